"""Built-in tasks: seeded per item, rebuildable alone, right answers."""

from __future__ import annotations

import re
from pathlib import Path

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


GSM8K_TEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "test.jsonl"


def test_unanswerable_arith_rows_lack_a_quantity_and_ask_for_idk():
    task = get_task("arith", unanswerable=0.5)
    rows = task.rows(200, seed=3)
    missing = [r for r in rows if not r["answerable"]]
    assert 60 < len(missing) < 140
    assert all(r["answer"] is None for r in missing)
    # the unanswerable variant of an item drops a number its answerable twin has
    for row in missing[:20]:
        twin = ArithTask().item(int(row["id"].split("-")[1]) - 3, seed=3)
        assert len(re.findall(r"\d+", row["question"])) < len(re.findall(r"\d+", twin["question"]))
    assert "\\boxed{IDK}" in task.instruction


def test_gsm8k_reads_a_local_file_with_its_gold_after_hashes():
    task = get_task("gsm8k", data=str(GSM8K_TEST))
    rows = task.rows(3)
    assert [r["id"] for r in rows] == ["gsm8k-test-1", "gsm8k-test-2", "gsm8k-test-3"]
    assert all("####" in r["answer"] and r["question"] for r in rows)
    assert task.verifier == "math"


def test_gsm8k_without_a_file_or_hub_says_to_pass_one(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(ValueError, match="--data"):
        get_task("gsm8k").rows(2)


def test_jsonl_task_reads_users_rows_and_names_a_bad_line(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text('{"question": "1+1?", "answer": "2"}\n\n{"id": "b", "question": "2+2?", "answer": "4"}\n')
    task = get_task(f"jsonl:{path}", verifier="math")
    assert [r["id"] for r in task.rows(5)] == ["mine-1", "b"]
    path.write_text('{"question": "1+1?"}\n{not json\n')
    with pytest.raises(ValueError, match=r"mine.jsonl:2: invalid JSON"):
        task.rows(5)


def test_task_options_are_checked():
    with pytest.raises(ValueError, match="no option"):
        get_task("arith", colour="red")
    with pytest.raises(ValueError, match="drop --data"):
        get_task("arith", data="x.jsonl")
    with pytest.raises(ValueError, match="fraction"):
        get_task("arith", unanswerable=2)
