"""The demo end to end on a tiny random model: three points of both curves, the gains table, nothing redone, resume."""

from __future__ import annotations

import io
import json
import re
import sys
import types
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from rlcot.demo import AFTER, BEFORE, RECIPE, WARM_UP, plan_demo, run_demo
from rlcot.evals.points import read_points_csv
from rlcot.evals.report import write_report as real_write_report
from rlcot.store import load_traces, trace_files
from rlcot.tasks import get_task
from rlcot.train.recipe import load_recipe
from rlcot.train.resolve import WARM_UP_LABEL

# The real recipe, shrunk: 8 training rows and 2 held out, 6 thinking tokens, 2 SFT and 2 GRPO steps, mean@2.
# The random model never answers a chain; a length-parity verifier gives GRPO rewards that vary.
OVERRIDES = ["tasks.0.size=8", "tasks.0.eval_size=2", "thinking.max_thinking_tokens=6",
             "thinking.max_answer_tokens=4", "sft_warmup.steps=2", "grpo.num_generations=4",
             "grpo.per_device_train_batch_size=4", "grpo.max_steps=2", "peft.r=4", "eval.sampled=2",
             "rewards.0.verifier=tests.train.plugins:even_length"]
BUDGETS = (0, 4)
POINTS = {"step 0": BEFORE, WARM_UP_LABEL: WARM_UP, "step 2": AFTER}  # the trainer's labels -> the demo's
# traces a point holds, both curves: 2 rows x 2 budgets, greedy once and sampled twice
PER_POINT = 2 * 2 * (1 + 2)


class ReportSpy:
    """``rlcot.evals.report`` as the demo sees it: the real ``write_report``, each call recorded."""

    def __init__(self):
        self.calls = []
        self.module = types.ModuleType("rlcot.evals.report")
        self.module.write_report = self.write_report

    def write_report(self, run_dirs, out=None):
        self.calls.append(([Path(d) for d in run_dirs], Path(out)))
        return real_write_report(run_dirs, out)


def slow_bf16(dtype, **_) -> float:
    """The CPU dtype probe on a CPU without fast bf16 (GFLOP/s): training takes fp32 wherever the tests run."""
    import torch

    return 100.0 if dtype == torch.float32 else 20.0


def demo(out: Path, tiny_dir: Path, **changes) -> tuple[dict, str]:
    """``run_demo`` on the tiny model; returns its result and what it printed."""
    sink = io.StringIO()
    options = {**dict(model=str(tiny_dir), overrides=OVERRIDES, budgets=BUDGETS, device="cpu"), **changes}
    result = run_demo(out, Console(file=sink, width=200), **options)
    return result, sink.getvalue()


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_dir):
    """One whole demo, shared by the tests that only read what it left."""
    out = tmp_path_factory.mktemp("finished") / "demo"
    report = ReportSpy()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("rlcot.dtypes.matmul_gflops", slow_bf16)  # fp32 on every CPU
        patch.setitem(sys.modules, "rlcot.evals.report", report.module)
        result, text = demo(out, tiny_dir)
    return out, result, text, report


def snapshot(out: Path) -> dict[str, int]:
    """Every file's mtime, but a sweep's run info, which records each invocation (argv, start time) by design."""
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in sorted(out.rglob("*"))
            if p.is_file() and not p.name.endswith(".run.json")}


def held_out() -> set[str]:
    mix = load_recipe(RECIPE).tasks[0]
    return {row["id"] for row in get_task(mix.name, options=mix.options).rows(10, seed=0)[8:]}  # after the 8 trained


def curve_keys(curve_dir: Path) -> set[tuple]:
    return {(r.model, r.row_id, r.sample, r.budget) for r in load_traces(curve_dir)}


def complete(samples: int) -> set[tuple]:
    return {(label, row, s, b) for label in POINTS for row in held_out() for s in range(samples) for b in BUDGETS}


def test_the_trainer_draws_both_curves_before_training_after_the_warm_up_and_after_grpo(finished):
    out, _, text, _ = finished
    greedy, sampled = out / "train" / "eval" / "chain", out / "train" / "eval" / "chain-sampled"
    assert curve_keys(greedy) == complete(1)
    assert curve_keys(sampled) == complete(2)
    assert {r.temperature for r in load_traces(greedy)} == {0.0}
    assert {r.temperature for r in load_traces(sampled)} == {1.0}  # the recipe's grpo.temperature
    base = json.loads((out / "train" / "checkpoint-2" / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert Path(base) == (out / "train" / "sft-warmup" / "model").resolve()  # GRPO trained on the warm-up
    assert (out / "train" / "summary.json").is_file()
    assert not (out / "sweep-before").exists() and not (out / "sweep-after").exists()  # no sweep stages
    assert f"{BEFORE} 0/{PER_POINT}, {WARM_UP} 0/{PER_POINT}, {AFTER} 0/{PER_POINT}" in text
    assert "no warm-up or checkpoint there yet" in text


def test_the_plot_has_a_greedy_and_a_mean_at_k_panel_with_the_three_points(finished):
    out, result, _, _ = finished
    assert result["plot"] == out / "plots" / "accuracy.png" and result["plot"].stat().st_size > 0
    points = read_points_csv(out / "plots" / "accuracy.csv")
    for metric in ("mean@2", "accuracy"):
        drawn = [p for p in points if p.metric == metric]
        assert {(p.series, p.budget) for p in drawn} == {(s, b) for s in (BEFORE, WARM_UP, AFTER) for b in BUDGETS}
        assert {p.samples for p in drawn} == ({2} if metric == "mean@2" else {1})


def test_the_report_is_the_training_runs_page(finished):
    out, result, _, report = finished
    assert report.calls == [([out / "train"], out / "report.html")]
    page = (out / "report.html").read_text()
    assert "Training reward" in page and WARM_UP_LABEL in page and "sampled, T=1" in page
    assert result["report"] == out / "report.html"


def test_the_headline_is_rls_own_gain_and_the_warm_ups_per_budget_with_cis_for_both_curves(finished):
    _, result, text, _ = finished
    gains = result["gains"]
    assert [(g.kind, g.name) for g in gains] == [("sampled", "mean@2, T=1"), ("greedy", "greedy")]
    for gain in gains:
        assert [line["budget"] for line in gain.rl] == [line["budget"] for line in gain.warm_up] == list(BUDGETS)
        assert all((line["before"], line["after"], line["problems"]) == (WARM_UP, AFTER, 2) for line in gain.rl)
        assert all((line["before"], line["after"]) == (BEFORE, WARM_UP) for line in gain.warm_up)
        assert all(line["change_lo"] <= line["change"] <= line["change_hi"] for line in gain.rl + gain.warm_up)
        assert all(line["samples"] == gain.samples for line in gain.rl)
    assert "RL's own gain [95% CI]" in text and "warm-up's gain [95% CI]" in text
    number, interval = r"[+-]\d\.\d{3}", r"\[[+-]\d\.\d\d, [+-]\d\.\d\d\]"
    accuracies = r"(?:\s+\d\.\d{3}){3}"  # before, after the warm-up, after GRPO
    rows = re.findall(rf"(mean@2, T=1|greedy)\s+(\d+){accuracies}\s+{number} {interval}\s+{number} {interval}", text)
    assert rows == [(name, str(b)) for name in ("mean@2, T=1", "greedy") for b in BUDGETS]


def test_a_second_run_redoes_nothing(finished, tiny_dir):
    out, first, _, report = finished
    files = snapshot(out)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "rlcot.evals.report", report.module)
        result, text = demo(out, tiny_dir)
    assert snapshot(out) == files  # traces, checkpoints, plot and page untouched
    assert all(stage["skipped"] for stage in result["stages"].values())
    assert f"{BEFORE} {PER_POINT}/{PER_POINT}, {WARM_UP} {PER_POINT}/{PER_POINT}, {AFTER} {PER_POINT}/" in text
    assert "finished already" in text and len(report.calls) == 1
    assert result["gains"] == first["gains"] and "RL's own gain" in text  # the headline is printed again


def stop_in(label: str, samples: int, sweep):
    """``run_sweep`` that stores one problem of the curve (``label``, ``samples``), then Ctrl-C; others as they are."""

    def run(spec, out_dir, **kwargs):
        if spec.models == (label,) and spec.samples == samples:
            sweep(replace(spec, limit=1), out_dir, **kwargs)
            raise KeyboardInterrupt
        return sweep(spec, out_dir, **kwargs)

    return run


def lines(curve_dir: Path) -> str:
    return "".join(path.read_text() for path in trace_files(curve_dir))


def test_an_interrupted_demo_resumes_every_curve_and_step_where_it_stopped(tmp_path, tiny_dir, monkeypatch):
    from rlcot.evals.training import run_sweep
    from rlcot.train.callbacks import RunLog

    monkeypatch.setattr("rlcot.dtypes.matmul_gflops", slow_bf16)
    monkeypatch.setitem(sys.modules, "rlcot.evals.report", ReportSpy().module)
    out = tmp_path / "demo"
    greedy, sampled = out / "train" / "eval" / "chain", out / "train" / "eval" / "chain-sampled"

    # Ctrl-C in the warm-up's greedy curve, one of its two problems stored (its mean@2 curve came first)
    with monkeypatch.context() as patch:
        patch.setattr("rlcot.evals.training.run_sweep", stop_in(WARM_UP_LABEL, 1, run_sweep))
        with pytest.raises(KeyboardInterrupt):
            demo(out, tiny_dir)
    assert (out / "train" / "sft-warmup" / "model" / "config.json").is_file()
    assert {key[0] for key in curve_keys(sampled)} == {"step 0", WARM_UP_LABEL}
    assert len([key for key in curve_keys(greedy) if key[0] == WARM_UP_LABEL]) == 2  # 1 row x 2 budgets
    stored = lines(greedy)
    monkeypatch.setattr("rlcot.train.trainer.sft_warmup", lambda *a, **k: pytest.fail("the SFT warm-up ran again"))

    # again: GRPO starts from the saved warm-up, whose curve is finished first; Ctrl-C at step 2, logged, no checkpoint
    log = RunLog.on_log

    def log_then_stop(self, args, state, control, logs=None, **kwargs):
        log(self, args, state, control, logs=logs, **kwargs)
        if state.global_step == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(RunLog, "on_log", log_then_stop)
        with pytest.raises(KeyboardInterrupt):
            demo(out, tiny_dir)
    assert lines(greedy).startswith(stored)  # appended to, never rewritten
    assert {key for key in curve_keys(greedy) if key[0] != "step 2"} == {k for k in complete(1) if k[0] != "step 2"}
    assert sorted(p.name for p in (out / "train").glob("checkpoint-*")) == ["checkpoint-1"]

    # again: step 2 from checkpoint-1, then Ctrl-C in the final greedy curve, one problem stored
    with monkeypatch.context() as patch:
        patch.setattr("rlcot.evals.training.run_sweep", stop_in("step 2", 1, run_sweep))
        with pytest.raises(KeyboardInterrupt):
            demo(out, tiny_dir)
    assert (out / "train" / "checkpoint-2").is_dir() and not (out / "train" / "summary.json").exists()
    stored = lines(greedy)

    # and once more: no step is trained, the final curve is finished, then the plot, the page and the headline
    result, text = demo(out, tiny_dir)
    assert result["stages"]["train"]["state"] == "finished from checkpoint-2"
    assert f"{AFTER} {PER_POINT - 2}/{PER_POINT}" in text  # all but the final greedy curve's second problem
    assert lines(greedy).startswith(stored)
    assert curve_keys(greedy) == complete(1) and curve_keys(sampled) == complete(2)
    logs = [json.loads(line) for line in (out / "train" / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in logs if "reward" in line] == [1, 2]  # step 2 once, though logged twice
    assert (out / "train" / "summary.json").is_file() and (out / "plots" / "accuracy.png").is_file()
    assert [gain.kind for gain in result["gains"]] == ["sampled", "greedy"]
    # the final weights and state are the last checkpoint's, where the run directory keeps them
    for name in ("adapter_model.safetensors", "trainer_state.json"):
        assert (out / "train" / name).read_bytes() == (out / "train" / "checkpoint-2" / name).read_bytes()


@pytest.mark.parametrize("changes, message", [
    # the finished demo's out, other budgets: the dotted key that differs is named
    (dict(budgets=(0, 8)), r"other settings \(recipe\.eval\.budgets differ\)"),
    (dict(recipe=Path("no/such.yaml")), "does not exist"),
    (dict(overrides=["grpo.max_step=3"]), "did you mean 'max_steps'"),
    (dict(overrides=["tasks.1.name=chain"]), "the demo draws one task's curves"),
    (dict(limit=0), "limit=0 must be >= 1"),
    (dict(budgets=()), "budgets is empty"),
    (dict(budgets=(-1, 4)), r"eval\.budgets\.0"),
    (dict(overrides=[*OVERRIDES, "sft_warmup=null"]), "has no sft_warmup"),
    (dict(overrides=[*OVERRIDES, "eval.sampled=0"]), "eval.sampled=0"),
    (dict(overrides=[*OVERRIDES, "tasks.0.eval_size=0"]), "eval_size=0"),
    (dict(overrides=[*OVERRIDES, "eval.samples=2"]), "greedy decoding"),  # a curve the trainer could not sweep
])
def test_bad_input_is_a_one_line_error_before_any_work(finished, tiny_dir, changes, message):
    out = finished[0]
    files = snapshot(out)
    with pytest.raises(ValueError, match=message) as caught:
        demo(out, tiny_dir, **changes)
    assert "\n" not in str(caught.value)
    assert snapshot(out) == files


def test_an_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "demo").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        run_demo(tmp_path / "demo", Console(file=io.StringIO()))


def test_the_default_demo_is_the_chain_recipe_with_fewer_steps_and_rows(tmp_path, monkeypatch):
    monkeypatch.setattr("rlcot.dtypes.matmul_gflops", slow_bf16)
    recipe = load_recipe(RECIPE)
    plan = plan_demo(tmp_path / "demo", device="cpu")
    assert RECIPE.name == "chain-grpo-cpu.yaml" and plan.recipe.tasks[0].name == "chain"
    assert (plan.recipe.grpo["max_steps"], plan.recipe.tasks[0].eval_size, plan.recipe.eval.every) == (10, 32, 0)
    assert (plan.recipe.sft_warmup, plan.recipe.eval.budgets) == (recipe.sft_warmup, recipe.eval.budgets)
    assert [(c.kind, c.samples, c.limit) for c in plan.curves] == [("sampled", recipe.eval.sampled, 32),
                                                                   ("greedy", 1, 32)]
    assert not (tmp_path / "demo").exists()  # planning writes nothing
