"""One contract over every task and registered verifier (reasoning-gym's habit)."""

from __future__ import annotations

import pytest

from rlcot.tasks import TASKS, get_task
from rlcot.verifiers import REGISTRY, get_verifier

JUNK = "}{\\boxed{" * 125_000  # 1 MB of brace soup; its latency per verifier is in bench/verifier_speed.py


def _task(name):
    if name == "arith":
        return get_task(name, unanswerable=0.3)
    return get_task(name)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_gold_answers_of_generated_items_are_correct(name):
    task = _task(name)
    verifier = task.build_verifier()  # with the task's options (GSM8K: lenient percent)
    rows = task.rows(12, seed=11)
    for row in rows:
        verdict = verifier.verify(f"<think>working</think>{task.gold_answer(row)}", row)
        expected = "abstain" if row.get("answerable", True) is False else "correct"
        assert verdict.outcome == expected, (row["id"], verdict)
        assert not verdict.hedged


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_empty_answers_are_unparsed_and_junk_is_never_correct(name):
    task = next(t for t in TASKS.values() if t.verifier == name)
    row = _task(task.name).rows(1, seed=2)[0]
    verifier = get_verifier(name)
    assert verifier.verify("<think>hm</think>", row).outcome == "unparsed"
    assert verifier.verify("", row).outcome == "unparsed"
    assert verifier.verify_answer(None, row).outcome == "unparsed"
    verdict = verifier.verify(f"<think>x</think>{JUNK}", row)
    assert verdict.outcome in ("unparsed", "wrong")
    if verifier.answer_section_limit(row) is not None:  # a puzzle verifier does not even read it
        assert verdict.reason == "too_long"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_an_answer_only_inside_thinking_is_no_answer(name):
    task = next(t for t in TASKS.values() if t.verifier == name)
    row = _task(task.name).rows(1, seed=4)[0]
    verdict = get_verifier(name).verify(f"<think>{task.gold_answer(row)}</think>", row)
    assert (verdict.outcome, verdict.reason) == ("unparsed", "no_answer")
