"""Sweeps: content keys, resume, shards, torn lines, re-scoring, gold log-probabilities."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rlcot.evals.rescore import rescore
from rlcot.store import Shard, TraceStore, load_traces, scorings
from rlcot.evals.sweep import model_loader, run_sweep
from rlcot.evals.sweep_spec import SweepSpec, expand_models
from tests.conftest import ScriptedLM


def hash_lm(tokenizer):
    """A model whose next token is a fixed function of the whole sequence so far.

    Unlike a real model, its output cannot depend on what else is in the batch, so
    two runs with different batch compositions (shards) must agree exactly.
    """
    digits = [tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)]

    def respond(seen):
        return digits[(len(seen) * 7 + seen[-1] + sum(seen[-5:])) % 10]

    return ScriptedLM(0, respond, len(tokenizer), tokenizer.eos_token_id)


def spec(**changes) -> SweepSpec:
    base = dict(models=("m",), budgets=(0, 4, 8), samples=2, temperature=0.7, limit=3, dtype="fp32",
                batch_size=2, max_answer_tokens=4, gold_logprob=False)
    return SweepSpec(**{**base, **changes})


def keys(run_dir: Path) -> list[str]:
    return [json.loads(line)["key"] for path in sorted(run_dir.glob("rows*.jsonl"))
            for line in path.read_text().splitlines()]


def test_every_model_row_sample_budget_is_one_scored_row(tmp_path, tokenizer):
    report = run_sweep(spec(), tmp_path, loader=model_loader(hash_lm(tokenizer), tokenizer))
    rows = load_traces(tmp_path)
    assert report.written == len(rows) == 3 * 2 * 3
    assert {(r.row_id, r.sample, r.budget) for r in rows} == {
        (f"arith-{i}", s, b) for i in range(3) for s in range(2) for b in (0, 4, 8)}
    for row in rows:
        assert row.thinking_tokens <= row.budget and row.capped  # the hash model never closes its thinking
        assert row.verdict.outcome in ("correct", "wrong", "abstain", "unparsed")
        assert row.score == {"correct": 1.0, "wrong": -4.0, "unparsed": -4.0, "abstain": 0.0}.get(
            row.verdict.outcome, row.score)
        start, end = row.forced_spans[0]
        assert row.completion[start:end] == "\n</think>\n\nThe final answer is \\boxed{"


def test_rerun_does_only_missing_work_and_more_budgets_add_rows(tmp_path, tokenizer):
    load = model_loader(hash_lm(tokenizer), tokenizer)
    run_sweep(spec(), tmp_path, loader=load)
    again = run_sweep(spec(), tmp_path, loader=load)
    assert (again.written, again.skipped) == (0, 18)
    more = run_sweep(spec(budgets=(0, 4, 8, 12)), tmp_path, loader=load)
    assert (more.written, more.skipped) == (6, 18)  # only budget 12 was missing
    with pytest.raises(ValueError, match=r"temperature 0.7 \(stored\) vs 0.9"):  # another experiment: refused
        run_sweep(spec(temperature=0.9), tmp_path, loader=load)
    rows = load_traces(tmp_path)
    assert len(rows) == len(set(keys(tmp_path))) == 18 + 6


def test_shards_merge_to_exactly_the_unsharded_run(tmp_path, tokenizer):
    load = model_loader(hash_lm(tokenizer), tokenizer)
    run_sweep(spec(limit=5), tmp_path / "one", loader=load)
    for index in range(3):
        run_sweep(spec(limit=5), tmp_path / "split", Shard(index, 3), loader=load)
    sizes = [len(keys_in) for keys_in in (Path(p).read_text().splitlines()
                                         for p in sorted((tmp_path / "split").glob("rows.shard-*.jsonl")))]
    assert len(sizes) == 3 and sum(sizes) == 5 * 2 * 3 and max(sizes) < 30  # the work was divided
    strip = lambda rows: {r.key: (r.completion, r.verdict, r.score) for r in rows}  # noqa: E731
    assert strip(load_traces(tmp_path / "split")) == strip(load_traces(tmp_path / "one"))


def test_a_torn_last_line_is_dropped_and_redone(tmp_path, tokenizer):
    load = model_loader(hash_lm(tokenizer), tokenizer)
    run_sweep(spec(), tmp_path, loader=load)
    path = tmp_path / "rows.jsonl"
    lines = path.read_bytes().split(b"\n")[:-1]
    torn = b"\n".join(lines[:-1]) + b"\n" + lines[-1][: len(lines[-1]) // 2]  # killed mid-write
    path.write_bytes(torn)
    again = run_sweep(spec(), tmp_path, loader=load)
    assert again.written == 1
    assert sorted(keys(tmp_path)) == sorted(set(keys(tmp_path))) and len(keys(tmp_path)) == 18


def test_a_damaged_line_before_the_end_is_an_error_not_dropped(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    with pytest.raises(ValueError, match=r"rows.jsonl:2: not a stored trace"):
        with TraceStore(tmp_path).writing("a test"):
            pass
    assert path.read_text() == '{"key": "a"}\nnot json\n{"key": "b"}\n'  # nothing cut


def test_rescoring_sits_beside_the_original_and_is_chosen_by_name(tmp_path, tokenizer):
    run_sweep(spec(), tmp_path, loader=model_loader(hash_lm(tokenizer), tokenizer))
    name, count = rescore(tmp_path, scheme="binary")
    assert (name, count) == ("binary", 18)
    assert scorings(tmp_path) == ["binary", "default"]
    default, binary = load_traces(tmp_path, "default"), load_traces(tmp_path, "binary")
    assert [r.verdict for r in default] == [r.verdict for r in binary]
    assert {r.score for r in binary} <= {0.0, 1.0} and any(r.score < 0 for r in default)
    with pytest.raises(ValueError, match="no scoring 'strict'"):
        load_traces(tmp_path, "strict")


def test_gold_logprob_rows_are_finite_and_negative(tmp_path, tokenizer, tiny_model):
    load = model_loader(tiny_model, tokenizer)
    run_sweep(spec(gold_logprob=True, limit=2, samples=1, temperature=0.0), tmp_path, loader=load)
    values = [r.gold_logprob for r in load_traces(tmp_path)]
    assert len(values) == 6 and all(math.isfinite(v) and v < 0 for v in values)


@pytest.mark.parametrize("task, cue", [("sudoku", "The completed grid:\n"), ("crossword", "1A:")])
def test_puzzle_sweeps_force_their_own_cue_and_are_scored_by_their_verifier(tmp_path, tokenizer, tiny_model, task,
                                                                           cue):
    run_sweep(spec(task=task, limit=2, samples=1, temperature=0.0, gold_logprob=True), tmp_path,
              loader=model_loader(tiny_model, tokenizer))
    rows = load_traces(tmp_path)
    assert len(rows) == 6 and {r.task["name"] for r in rows} == {task}
    for row in rows:
        start, end = row.forced_spans[0]
        assert row.completion[start:end].endswith(cue)
        assert row.verdict.outcome in ("wrong", "unparsed")  # a random model writes no solution
        assert math.isfinite(row.gold_logprob)


def test_a_training_run_directory_is_one_model_per_checkpoint(tmp_path):
    run = tmp_path / "run"
    for step in (20, 5, 10):
        (run / f"checkpoint-{step}").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "trainer_state.json").write_text(json.dumps({"global_step": 25}))
    refs = expand_models([str(run), "smollm2-135m"])
    assert [(r.label, r.step) for r in refs] == [("run@5", 5), ("run@10", 10), ("run@20", 20), ("run@25", 25),
                                                 ("smollm2-135m", None)]


def test_run_at_last_or_at_a_step_picks_one_model_of_the_run(tmp_path):
    run = tmp_path / "run"
    for step in (5, 10):
        (run / f"checkpoint-{step}").mkdir(parents=True)
    assert [(r.label, r.path) for r in expand_models([f"{run}@last", f"{run}@5"])] == [
        ("run@10", str(run / "checkpoint-10")), ("run@5", str(run / "checkpoint-5"))]
    (run / "config.json").write_text("{}")  # final weights at the top level, after the last checkpoint
    (run / "trainer_state.json").write_text(json.dumps({"global_step": 12}))
    assert [(r.label, r.path, r.step) for r in expand_models([f"{run}@last"])] == [("run@12", str(run), 12)]
    with pytest.raises(ValueError, match=r"run@7: the run has steps 5, 10, 12; pick one of them or .*run@last"):
        expand_models([f"{run}@7"])
    # no state beside the final weights: the last checkpoint's max_steps says where training ended
    (run / "trainer_state.json").unlink()
    (run / "checkpoint-10" / "trainer_state.json").write_text(json.dumps({"global_step": 10, "max_steps": 10}))
    assert [(r.label, r.path) for r in expand_models([str(run)])] == [
        ("run@5", str(run / "checkpoint-5")), ("run@10", str(run / "checkpoint-10"))]  # the same weights once
    assert [r.label for r in expand_models(["org/model@main"])] == ["org/model@main"]  # not a run: a name as given


@pytest.mark.parametrize("bad, message", [
    (dict(samples=4, temperature=0.0), "copies of one trace"),
    (dict(budgets=(16, -1)), r"budgets \[-1\]"),
    (dict(backend="tgi"), "not hf, vllm or openai"),
])
def test_bad_specs_name_the_value_and_the_fix(bad, message):
    with pytest.raises(ValueError, match=message):
        spec(**bad)


def test_spec_files_reject_unknown_keys_with_a_suggestion(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("models: [smollm2-135m]\nbudget: [0, 16]\n")
    with pytest.raises(ValueError, match="unknown key 'budget'; did you mean 'budgets'"):
        SweepSpec.from_yaml(path)
    path.write_text("models: smollm2-135m\nbudgets: 0,16\nsamples: 2\ntemperature: 0.6\n")
    assert SweepSpec.from_yaml(path, samples=3).samples == 3  # flags override the file
    assert SweepSpec.from_yaml(path).budgets == (0, 16)


def test_shard_syntax():
    assert Shard.parse("2/4") == Shard(2, 4) and Shard.parse(None) == Shard()
    with pytest.raises(ValueError, match="0 <= i < n"):
        Shard.parse("4/4")


def test_a_sweep_killed_mid_way_and_restarted_writes_every_row_exactly_once(tmp_path, tokenizer, tiny_model):
    import os
    import signal
    import subprocess
    import sys
    import time

    model_dir = tmp_path / "tiny"
    tiny_model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "rlcot.cli", "sweep", "--model", str(model_dir), "--out", str(out),
               "--limit", "24", "--budgets", "0,16,48", "--samples", "2", "--temperature", "0.8",
               "--batch-size", "2", "--dtype", "fp32", "--max-answer-tokens", "8", "--no-gold-logprob"]
    total = 24 * 2 * 3
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    victim = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows_file = out / "rows.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and victim.poll() is None:
        if rows_file.exists() and rows_file.read_bytes().count(b"\n") >= 6:
            break
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    at_kill = len(keys(out))
    assert 6 <= at_kill < total, "the sweep must be killed mid-way for this test to mean anything"
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    written = keys(out)
    assert len(written) == len(set(written)) == total
    assert f"{total - at_kill} traces written" in " ".join(finished.stdout.split())


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[2] / "evals" / "specs").glob("*.yaml")))
def test_every_shipped_sweep_spec_parses(path):
    parsed = SweepSpec.from_yaml(path)
    assert parsed.models and parsed.budgets
