"""Sweeps handed hostile input: directories of other settings, damaged rows, two writers, bad numbers, runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from rlcot.evals.analysis import headline
from rlcot.evals.series import series_of
from rlcot.evals.sweep import model_loader, run_sweep
from rlcot.evals.sweep_spec import expand_models
from rlcot.jsonl import DamagedLinesWarning, SkippedLine, exclusive
from rlcot.records import ScoredTrace
from rlcot.store import load_traces
from tests.evals.test_sweep import hash_lm, spec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def swept(tmp_path_factory, tokenizer) -> Path:
    """One finished sweep: model m, 3 arith rows x 2 samples at T=0.7, budgets 0, 4, 8 (18 rows)."""
    out = tmp_path_factory.mktemp("swept") / "run"
    run_sweep(spec(), out, loader=model_loader(hash_lm(tokenizer), tokenizer))
    return out


@pytest.fixture
def run(swept, tmp_path) -> Path:
    """A copy of the finished sweep this test may change."""
    return Path(shutil.copytree(swept, tmp_path / "run"))


class CountingLoader:
    """A ``run_sweep`` loader that counts the models it was asked to load."""

    def __init__(self, tokenizer):
        self.calls, self.inner = 0, model_loader(hash_lm(tokenizer), tokenizer)

    def __call__(self, *args):
        self.calls += 1
        return self.inner(*args)


def jsonl_task(tmp_path) -> str:
    data = tmp_path / "questions.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"{i} + 1?", "answer": str(i + 1)}) + "\n"
                            for i in range(3)))
    return f"jsonl:{data}"


# ------------------------------------------------------------------ 1. one setting per directory


@pytest.mark.parametrize("change, named", [
    (dict(temperature=0.0, samples=1), "temperature 0.7 (stored) vs 0.0 (this run)"),  # the pooled "x 2 samples"
    (dict(top_p=0.9), "top_p 1.0 (stored) vs 0.9"),
    (dict(seed=1), "seed 0 (stored) vs 1"),
    (dict(max_answer_tokens=6), "max_answer_tokens 4 (stored) vs 6"),
    (dict(dtype="bf16"), "dtype float32 (stored) vs bfloat16"),
    (dict(scheme="binary"), "scheme default (stored) vs binary"),  # a rescoring's job, not a sweep's
    (dict(task_args={"unanswerable": 0.5}), "task arith (stored) vs arith unanswerable=0.5"),
    ("jsonl", "task arith (stored) vs jsonl:"),  # arith and file rows once pooled as "8 problems"
])
def test_a_sweep_into_a_directory_of_other_settings_is_refused_before_it_writes(run, tmp_path, tokenizer, change,
                                                                             named):
    if change == "jsonl":
        change = dict(task=jsonl_task(tmp_path))
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    loader = CountingLoader(tokenizer)
    with pytest.raises(ValueError) as refused:
        run_sweep(spec(**change), run, loader=loader)
    message = str(refused.value)
    assert named in message and str(run) in message and "pass another --out" in message
    assert "\n" not in message
    assert loader.calls == 0
    assert {path.name: path.read_bytes() for path in run.iterdir()} == before  # rows and run info untouched


def test_more_models_budgets_rows_and_samples_at_the_same_settings_extend_a_directory(run, tokenizer):
    load = model_loader(hash_lm(tokenizer), tokenizer)
    report = run_sweep(spec(models=("m", "n"), budgets=(0, 4, 8, 12), limit=4, samples=4), run, loader=load)
    assert report.written == 2 * 4 * 4 * 4 - 18
    # a training run's eval directory: one call per step, each with its own model label
    for step in (0, 5):
        run_sweep(spec(models=(f"step {step}",)), run, loader=load, step=step, run_dir=str(run.parent))
    curves = {s.label: (len(s.problems), s.samples) for s in series_of(load_traces(run))}
    assert curves == {"m": (4, 4), "n": (4, 4), "step 0": (3, 2), "step 5": (3, 2)}


def test_rows_of_other_settings_already_in_a_directory_are_split_into_labelled_curves(tmp_path, tokenizer):
    # written by a version that did not refuse: T=0 with 1 sample, then T=0.7 with 2, in one rows.jsonl
    load = model_loader(hash_lm(tokenizer), tokenizer)
    greedy, sampled = tmp_path / "greedy", tmp_path / "sampled"
    run_sweep(spec(temperature=0.0, samples=1, limit=4), greedy, loader=load)
    run_sweep(spec(limit=4), sampled, loader=load)
    pooled = tmp_path / "pooled"
    pooled.mkdir()
    old = [{k: v for k, v in json.loads(line).items() if k not in ("sweep_seed", "max_answer_tokens")}
           for path in (greedy / "rows.jsonl", sampled / "rows.jsonl") for line in path.read_text().splitlines()]
    (pooled / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in old))
    rows = load_traces(pooled)
    curves = {s.label: (len(s.problems), s.samples, len(s.traces)) for s in series_of(rows)}
    assert curves == {"m [temperature=0.0]": (4, 1, 12), "m [temperature=0.7]": (4, 2, 24)}
    assert {line["model"] for line in headline(rows)} == set(curves)
    # rows of one setting, half of them written before seeds were stored: still one curve
    mixed = [row if i % 2 else json.loads(line) for i, (row, line) in enumerate(
        zip(old[12:], (sampled / "rows.jsonl").read_text().splitlines()))]
    assert [s.label for s in series_of(ScoredTrace.from_dict(row) for row in mixed)] == ["m"]


# ------------------------------------------------------------------ 2. damaged lines are named, not dropped


def test_a_damaged_line_before_others_is_skipped_and_named_with_its_file_line_and_reason(run):
    path = run / "rows.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:40]  # line 3: cut short by hand, with lines after it
    lines.insert(4, json.dumps({"key": "x"}))  # line 5: JSON with a key, but not a stored trace
    path.write_text("\n".join(lines) + "\n" + lines[-1][:30])  # and a torn tail: a writer in flight
    skipped: list[SkippedLine] = []
    rows = load_traces(run, skipped=skipped)
    assert len(rows) == 17
    assert [(s.path, s.line) for s in skipped] == [(path, 3), (path, 5)]  # the torn tail is not damage
    assert skipped[0].reason.startswith("invalid JSON")
    assert skipped[1].reason.startswith("not a stored trace: missing model, task, row_id")
    assert str(skipped[0]).startswith(f"{path}:3: invalid JSON")
    with pytest.warns(DamagedLinesWarning, match=r"skipped 2 damaged lines: .*rows.jsonl:3: invalid JSON") as caught:
        load_traces(run, "default")
    assert [s.line for s in caught[0].message.skipped] == [3, 5]


def test_a_torn_tail_alone_is_skipped_without_a_warning(run):
    path = run / "rows.jsonl"
    path.write_bytes(path.read_bytes() + b'{"key": "half a ro')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_traces(run)) == 18


def test_a_directory_of_only_damaged_lines_names_them_not_a_missing_scoring(tmp_path):
    (tmp_path / "rows.jsonl").write_text('{"key": "x"}\n')
    with pytest.raises(ValueError, match=r"no readable stored trace: skipped 1 damaged line: .*rows.jsonl:1: not a "
                                         r"stored trace: missing model"):
        load_traces(tmp_path, "default")


# ------------------------------------------------------------------ 3. one writer at a time


def test_a_second_sweep_into_a_directory_being_written_stops_at_once(run, tokenizer):
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    loader = CountingLoader(tokenizer)
    with exclusive(run / "rows.jsonl", "rlcot sweep"):  # the first run, still going
        with pytest.raises(ValueError, match=rf"rows.jsonl is being written by another rlcot sweep "
                                             rf"\(pid {os.getpid()}\); wait for it or pass another --out"):
            run_sweep(spec(budgets=(0, 4, 8, 12)), run, loader=loader)
    assert loader.calls == 0
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.name != "rows.jsonl.lock"} == before
    assert run_sweep(spec(budgets=(0, 4, 8, 12)), run, loader=loader).written == 6  # released: it runs
    assert not (run / "rows.jsonl.lock").exists()  # and leaves no lock file behind


def test_a_lock_held_by_another_process_names_its_pid_and_is_freed_when_it_dies(tmp_path):
    target = tmp_path / "rows.jsonl"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom rlcot.jsonl import exclusive\n"
                               f"with exclusive({str(target)!r}, 'rlcot sweep'):\n"
                               "    print('held', flush=True)\n    time.sleep(120)\n"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ValueError, match=rf"another rlcot sweep \(pid {holder.pid}\)"):
            with exclusive(target, "rlcot sweep"):
                pass
        with exclusive(tmp_path / "rows.shard-1-of-2.jsonl", "rlcot sweep"):
            pass  # another shard's file is another lock
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with exclusive(target, "rlcot sweep"):  # killed: the kernel released its lock
        assert (tmp_path / "rows.jsonl.lock").read_text().strip() == str(os.getpid())


# ------------------------------------------------------------------ 4. numbers checked before anything exists


@pytest.mark.parametrize("bad, message", [
    (dict(temperature=-1.0), r"temperature=-1.0 is not a finite number >= 0"),
    (dict(temperature=float("nan")), r"temperature=nan is not a finite number >= 0"),
    (dict(temperature=float("inf")), r"temperature=inf"),
    (dict(temperature="0.7"), r"temperature='0.7'"),  # a YAML string, not a number
    (dict(top_p=2.0), r"top_p=2.0 is not in \(0, 1\]"),
    (dict(top_p=0.0), r"top_p=0.0 is not in \(0, 1\]"),
    (dict(top_p=float("nan")), r"top_p=nan is not in \(0, 1\]"),
    (dict(samples=2.5), r"samples=2.5 is not a whole number"),
    (dict(max_answer_tokens=0), r"max_answer_tokens=0 is not a whole number >= 1"),
])
def test_bad_numbers_in_a_spec_name_the_value_and_the_fix(bad, message):
    with pytest.raises(ValueError, match=message):
        spec(**bad)


def test_a_sweep_that_fails_a_check_needing_no_model_creates_nothing(tmp_path, tokenizer):
    empty_run = tmp_path / "train-out"
    empty_run.mkdir()
    out = tmp_path / "sweep"
    loader = CountingLoader(tokenizer)
    with pytest.raises(ValueError, match="no checkpoint-N or final weights"):
        run_sweep(spec(models=(f"{empty_run}@last",)), out, loader=loader)
    assert not out.exists() and loader.calls == 0


# ------------------------------------------------------------------ 5. a training run is not a sweep directory


def test_plotting_a_training_run_points_to_its_eval_curves(tmp_path, tokenizer):
    training = tmp_path / "run"
    run_sweep(spec(), training / "eval" / "arith", loader=model_loader(hash_lm(tokenizer), tokenizer))
    (training / "metrics.jsonl").write_text('{"step": 1, "reward": 0.5}\n')
    with pytest.raises(ValueError, match=rf"{training} is a training run.*`rlcot plot {training / 'eval' / 'arith'}`"
                                         rf".*`rlcot report {training}`"):
        load_traces(training)
    shutil.rmtree(training / "eval")
    with pytest.raises(ValueError, match=rf"training run with no eval curves.*`rlcot report {training}`"):
        load_traces(training)


# ------------------------------------------------------------------ 6. RUN@last on a run without weights


def test_run_at_last_on_a_run_with_no_weights_is_a_clear_error(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1}\n')  # started, never saved
    for pick in ("last", "3"):
        with pytest.raises(ValueError, match=rf"{run} has no checkpoint-N or final weights .*train it first, "
                                             "or pass a model directory"):
            expand_models([f"{run}@{pick}"])
    (run / "config.json").write_text("{}")  # final weights only, no checkpoint kept
    (run / "trainer_state.json").write_text(json.dumps({"global_step": 7}))
    assert [(r.label, r.path, r.step) for r in expand_models([f"{run}@last", f"{run}@7"])] == [
        ("run@7", str(run), 7)] * 2
