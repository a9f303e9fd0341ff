"""The demo pipeline end to end on a tiny random model: files, both curves, nothing redone, resume after Ctrl-C."""

from __future__ import annotations

import io
import json
import sys
import types
from pathlib import Path

import pytest
from rich.console import Console

from rlcot.evals.report import write_report as real_write_report
from rlcot.store import load_traces
from rlcot.demo import RECIPE, run_demo
from rlcot.tasks import get_task

# The real recipe, shrunk: 8 training rows and 2 held out, 6 thinking tokens, 2 SFT and 2 GRPO steps.
# The random model never answers arith; a length-parity verifier gives GRPO rewards that vary.
OVERRIDES = ["tasks.0.size=8", "tasks.0.eval_size=2", "thinking.max_thinking_tokens=6",
             "thinking.max_answer_tokens=4", "sft_warmup.steps=2", "grpo.num_generations=4",
             "grpo.per_device_train_batch_size=4", "grpo.max_steps=2", "peft.r=4",
             "rewards.0.verifier=tests.train.plugins:even_length"]


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
    options = {**dict(model=str(tiny_dir), overrides=OVERRIDES, budgets=(0, 4), device="cpu"), **changes}
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


def test_the_demo_sweeps_held_out_rows_trains_sweeps_the_final_weights_plots_and_reports(finished):
    out, result, text, report = finished
    before, after = load_traces(out / "sweep-before"), load_traces(out / "sweep-after")
    held_out = {row["id"] for row in get_task("arith").rows(10, seed=0)[8:]}  # after the 8 training rows
    for rows in (before, after):
        assert {(r.row_id, r.budget) for r in rows} == {(i, b) for i in held_out for b in (0, 4)}
    checkpoint = out / "train" / "checkpoint-2"
    assert {r.model_path for r in after} == {str(checkpoint)}  # the final weights, not every kept checkpoint
    base = json.loads((checkpoint / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert Path(base) == (out / "train" / "sft-warmup" / "model").resolve()  # merged onto the warm-up
    assert (out / "train" / "summary.json").is_file()
    assert not (out / "train" / "eval").exists()  # the in-training curves are off: the sweeps are them
    plotted = json.loads((out / "plots" / "summary.json").read_text())
    assert set(plotted["series"]) == {"before training", "after training"}
    assert (out / "plots" / "accuracy.png").stat().st_size > 0
    assert report.calls == [([out / "sweep-before", out / "sweep-after", out / "train"], out / "report.html")]
    page = (out / "report.html").read_text()  # the real page: both sweeps' traces and the training run's steps
    assert "sweep-before: " in page and "sweep-after: checkpoint-2" in page and "Training reward" in page
    assert result["plot"] == out / "plots" / "accuracy.png" and result["report"] == out / "report.html"
    lines = result["before_after"]
    assert [line["budget"] for line in lines] == [0, 4]
    assert all((line["before"], line["after"], line["problems"]) == ("before training", "after training", 2)
               for line in lines)
    assert "0 of 4 traces already there" in text and "nothing there yet" in text
    assert "held-out arith problems" in text and str(out / "report.html") in text


def test_a_second_run_redoes_nothing(finished, tiny_dir):
    out, _, _, report = finished
    files = snapshot(out)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "rlcot.evals.report", report.module)
        result, text = demo(out, tiny_dir)
    assert snapshot(out) == files  # rows, checkpoints, plot and page untouched
    assert all(stage["skipped"] for stage in result["stages"].values())
    assert text.count("4 of 4 traces already there") == 2 and "finished already" in text
    assert len(report.calls) == 1
    assert [line["budget"] for line in result["before_after"]] == [0, 4]  # the headline is printed again


def test_an_interrupted_demo_resumes_where_it_stopped_without_redoing_the_sweep_or_the_warm_up(tmp_path, tiny_dir,
                                                                                               monkeypatch):
    from rlcot.train.callbacks import RunLog

    monkeypatch.setattr("rlcot.dtypes.matmul_gflops", slow_bf16)
    monkeypatch.setitem(sys.modules, "rlcot.evals.report", ReportSpy().module)
    out = tmp_path / "demo"

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    # Ctrl-C in training, after the warm-up is saved (the trainer is built right after) and before any checkpoint
    with monkeypatch.context() as patch:
        patch.setattr("rlcot.train.trainer.build_trainer", ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            demo(out, tiny_dir)
    assert len(load_traces(out / "sweep-before")) == 4
    assert (out / "train" / "sft-warmup" / "model" / "config.json").is_file()
    assert not list((out / "train").glob("checkpoint-*"))
    monkeypatch.setattr("rlcot.train.trainer.sft_warmup", lambda *a, **k: pytest.fail("the SFT warm-up ran again"))

    # again, GRPO starts from the saved warm-up; Ctrl-C at step 2, logged but not yet checkpointed
    log = RunLog.on_log

    def log_then_stop(self, args, state, control, logs=None, **kwargs):
        log(self, args, state, control, logs=logs, **kwargs)
        if state.global_step == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(RunLog, "on_log", log_then_stop)
        with pytest.raises(KeyboardInterrupt):
            demo(out, tiny_dir)
    assert sorted(p.name for p in (out / "train").glob("checkpoint-*")) == ["checkpoint-1"]

    # and once more: the sweep is skipped, training resumes from checkpoint-1, the rest runs
    result, text = demo(out, tiny_dir)
    assert result["stages"]["sweep before"]["written"] == 0 and "4 of 4 traces already there" in text
    assert result["stages"]["train"]["state"] == "resumed from checkpoint-1"
    logs = [json.loads(line) for line in (out / "train" / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in logs if "reward" in line] == [1, 2]  # step 2 once, though logged twice
    base = json.loads((out / "train" / "checkpoint-2" / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert Path(base) == (out / "train" / "sft-warmup" / "model").resolve()
    assert len(load_traces(out / "sweep-after")) == 4 and (out / "plots" / "accuracy.png").is_file()


@pytest.mark.parametrize("changes, message", [
    (dict(budgets=(0, 8)), r"other settings \(sweep.budgets differ\)"),  # the finished demo's out, new budgets
    (dict(recipe=Path("no/such.yaml")), "does not exist"),
    (dict(overrides=["grpo.max_step=3"]), "did you mean 'max_steps'"),
    (dict(overrides=["tasks.1.name=arith"]), "the demo sweeps one"),
    (dict(limit=0), "limit=0 must be >= 1"),
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


def test_the_default_recipe_is_the_repository_cpu_recipe():
    assert RECIPE.name == "arith-grpo-cpu.yaml" and RECIPE.is_file()
