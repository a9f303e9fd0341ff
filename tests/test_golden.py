"""Golden runs (issue 17): today's code gives the verdicts, scores and token counts recorded before the refactor.

The fixtures in tests/fixtures/golden/ were written by the code of the commit named in
their ``made_by`` (see make_golden.py, which also holds the specs and the two runners
these tests call, so the rerun is the recorded run):

- ``sweep-v0/``: a sweep directory as that code wrote it: 8 arith rows x 2 samples x
  budgets (0, 8) at T=0.8, for the tiny random llama and a scripted oracle whose
  verdicts vary (the random model's rows are all ``unparsed``, capped, at -4);
- ``grpo-2-steps.json``: every rollout of a 2-step GRPO run on the tiny model.

Only what is exact is compared: outcomes, answers, scores, token counts, token ids,
texts; never log-probabilities. The recorded side is read as plain JSON lines, so it
does not depend on the reader under test; the rerun is read with today's reader.

Everything runs in fp32 on one thread at fixed batch sizes (no bf16, whatever the
CPU). Float noise across CPUs stays in the last bits: the tokens were the same under
other thread counts, batch sizes and ATen/MKL instruction sets (make_golden.py says
what was measured). Still, a T=0.8 draw from the random llama's near-uniform
distribution can flip on such noise, a few percent of runs on another CPU; the
oracle's draws cannot. A failure names each cell and field that differs: a lone
llama ``completion`` differing late, on a new CPU, is that; a count, a verdict, a
score or any oracle cell is the code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rlcot.store import load_traces
from rlcot.evals.sweep import run_sweep
from rlcot.evals.sweep_spec import SweepSpec
from tests.fixtures.golden.make_golden import (GRPO_FILE, ORACLE, SWEEP, SWEEP_DIR, SWEEP_EXPECTED, TINY, one_thread,
                                               oracle_lm, run_golden_grpo, run_golden_sweep, sweep_numbers, tiny_model)

GOLDEN = Path(__file__).parent / "fixtures" / "golden"


def recorded_rows() -> list[dict]:
    """The fixture's rows as the old format stored them: one JSON object a line of ``rows.jsonl``."""
    return [json.loads(line) for line in (GOLDEN / SWEEP_DIR / "rows.jsonl").read_text().splitlines()]


def cells(rows) -> dict[tuple, dict]:
    """``{(model, row id, sample, budget): what must not change}`` for sweep rows."""
    return {(row["model"], row["row_id"], row["sample"], row["budget"]): {
        "outcome": row["verdict"]["outcome"], "answer": row["verdict"]["answer"], "score": row["score"],
        "thinking_tokens": row["thinking_tokens"], "answer_tokens": row["answer_tokens"], "capped": row["capped"],
        "finish_reason": row["finish_reason"], "completion": row["completion"]} for row in rows}


def differences(recorded: dict, now: dict, where: str = "") -> list[str]:
    """One line per field that differs, nested dicts by their path: a failure says where, not just that."""
    lines = []
    for key, old in recorded.items():
        new = now.get(key) if isinstance(now, dict) else None
        if isinstance(old, dict) and isinstance(new, dict):
            lines += differences(old, new, f"{where}{key}: ")
        elif new != old:
            lines.append(f"{where}{key}: recorded {old!r}, now {new!r}")
    return lines


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One torch thread, as the fixtures were written; the count before is restored for the other tests."""
    import torch

    before = one_thread()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def models(tokenizer):
    return {TINY: tiny_model(tokenizer), ORACLE: oracle_lm(tokenizer)}


def test_the_recorded_sweep_covers_every_outcome_and_how_thinking_ends():
    """The fixture itself: a golden of only ``unparsed`` capped rows would let a broken store pass."""
    oracle = [row for row in recorded_rows() if row["model"] == ORACLE]
    assert {row["verdict"]["outcome"] for row in oracle} == {"correct", "wrong", "abstain", "unparsed"}
    assert {row["finish_reason"] for row in oracle} == {"capped", "closed", "length"}
    assert len({(row["thinking_tokens"], row["answer_tokens"]) for row in oracle}) > 4


def test_the_sweep_gives_the_recorded_verdicts_scores_and_token_counts(tmp_path, tokenizer, models):
    run_golden_sweep(tmp_path, models, tokenizer)
    recorded, now = cells(recorded_rows()), cells(trace.to_dict() for trace in load_traces(tmp_path))
    assert len(recorded) == len(SWEEP["models"]) * SWEEP["limit"] * SWEEP["samples"] * len(SWEEP["budgets"]) == 64
    assert sorted(now) == sorted(recorded)
    assert differences(recorded, now) == []


def test_two_grpo_steps_give_the_recorded_rollouts_rewards_and_verdicts(tmp_path, tokenizer):
    recorded = json.loads((GOLDEN / GRPO_FILE).read_text())
    now = run_golden_grpo(tmp_path, tiny_model(tokenizer), tokenizer)
    assert len(now["rollouts"]) == len(recorded["rollouts"]) == 8  # 2 steps x 4 rollouts of one prompt
    for old, new in zip(recorded["rollouts"], now["rollouts"]):
        assert new == old, f"step {old['step']} rollout {old['position']}: {differences(old, new)}"
    assert [step["step"] for step in now["steps"]] == [step["step"] for step in recorded["steps"]] == [1, 2]
    for old, new in zip(recorded["steps"], now["steps"]):
        assert new == pytest.approx(old, abs=1e-6)


def test_the_sweep_directory_written_before_the_refactor_still_reads():
    expected = json.loads((GOLDEN / SWEEP_EXPECTED).read_text())
    rows = load_traces(GOLDEN / SWEEP_DIR)
    numbers = sweep_numbers(rows)  # rlcot.evals.series.series_of and rlcot.evals.analysis.headline
    assert numbers["rows"] == expected["rows"] == 64
    assert numbers["series"] == expected["series"]
    # the columns a store decides; the CI and the gold log-probability belong to the analysis
    columns = ("model", "B", "think", "cap", "acc", "answered", "score", "pass@2", "maj@2")
    pick = lambda table: [{c: line[c] for c in columns} for line in table]  # noqa: E731
    assert pick(numbers["headline"]) == pick(expected["headline"])
    accuracy = {(line["model"], line["B"]): line["acc"] for line in expected["headline"]}
    assert accuracy == {(TINY, 0): "0.000", (TINY, 8): "0.000", (ORACLE, 0): "0.250", (ORACLE, 8): "0.500"}


def test_rerunning_the_sweep_into_the_old_directory_finds_every_row_done(tmp_path):
    """Its keys still match: resuming an old directory redoes nothing (and so never loads a model)."""
    old = tmp_path / "sweep"
    shutil.copytree(GOLDEN / SWEEP_DIR, old)  # never write into the fixture

    def no_model(*args):
        raise AssertionError("a row of the old directory was taken for missing")

    report = run_sweep(SweepSpec(**SWEEP), old, loader=no_model)
    assert (report.written, report.skipped) == (0, 64)
