"""Built-in tasks: seeded per item, rebuildable alone, right answers."""

from __future__ import annotations

import re

import pytest

from rlcot.tasks import ArithTask, get_task
from rlcot.thinking import ThinkingProtocol


def _solve(row: dict) -> int:
    numbers = [int(x) for x in re.findall(r"\d+", row["question"])]
    kind = row["kind"]
    if kind == "add":
        return numbers[0] + numbers[1]
    if kind == "subtract":
        return numbers[0] - numbers[1]
    if kind == "multiply":
        return numbers[0] * numbers[1]
    if kind == "divide":
        return numbers[0] // numbers[1]
    return numbers[0] + numbers[1] - numbers[2]


def test_arith_rows_are_rebuilt_alone_from_seed_plus_index():
    task = ArithTask()
    rows = task.rows(50, seed=7)
    assert rows[:10] == task.rows(10, seed=7)
    assert rows[31] == task.item(31, seed=7)
    assert task.rows(5, seed=8)[0] == rows[1]  # seed + index is the only source
    assert len({r["question"] for r in rows}) > 40


def test_arith_answers_are_the_right_nonnegative_integers():
    rows = ArithTask().rows(200, seed=0)
    assert {r["kind"] for r in rows} == {"add", "subtract", "multiply", "divide", "two_step"}
    for row in rows:
        assert int(row["answer"]) == _solve(row) >= 0


def test_requests_carry_seed_plus_index_and_the_cue(tokenizer):
    task = get_task("arith")
    requests = task.requests(task.rows(3), tokenizer, ThinkingProtocol(), seed=10)
    assert [r.seed for r in requests] == [10, 11, 12]
    assert all(r.answer_cue == "The final answer is \\boxed{" for r in requests)
    assert requests[0].prompt_ids == tokenizer.encode(requests[0].prompt, add_special_tokens=False)


def test_unknown_task_names_the_choices():
    with pytest.raises(ValueError, match="arith"):
        get_task("chess")
