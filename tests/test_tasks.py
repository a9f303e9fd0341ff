"""Built-in tasks: seeded per item, rebuildable alone, right answers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rlcot.generation import derive_seed
from rlcot.tasks import ArithTask, get_task
from rlcot.thinking import ThinkingProtocol

GSM8K_TEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "test.jsonl"


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


def test_requests_carry_the_cue_and_the_prompt_task_prompt_gives(tokenizer):
    task = get_task("arith")
    rows = task.rows(3)
    requests = task.requests(rows, tokenizer, ThinkingProtocol(), seed=10)
    assert all(r.answer_cue == "The final answer is \\boxed{" for r in requests)
    assert requests[0].prompt == task.prompt(rows[0], tokenizer, ThinkingProtocol())
    assert requests[0].prompt_ids == tokenizer.encode(requests[0].prompt, add_special_tokens=False)
    assert rows[0]["question"] in requests[0].prompt and requests[0].prompt.endswith("<think>\n")


def test_sample_j_of_row_i_draws_the_same_seed_whatever_else_is_in_the_run(tokenizer):
    task = get_task("arith")
    rows = task.rows(4, seed=0)
    protocol = ThinkingProtocol()
    full = task.requests(rows, tokenizer, protocol, seed=10, samples=3)
    assert [(r.request_id, r.sample) for r in full[:4]] == [("arith-0", 0), ("arith-0", 1), ("arith-0", 2),
                                                             ("arith-1", 0)]
    assert all(r.seed == derive_seed(10, r.request_id, r.sample) for r in full)
    assert len({r.seed for r in full}) == 12  # every (row, sample) its own stream
    # row 2 alone, with fewer samples: same seeds for the samples both runs have
    alone = task.requests(rows[2:3], tokenizer, protocol, seed=10, samples=2)
    assert [r.seed for r in alone] == [r.seed for r in full if r.request_id == "arith-2"][:2]
    assert task.requests(rows[:1], tokenizer, protocol, seed=11)[0].seed != full[0].seed
    with pytest.raises(ValueError, match="samples=0"):
        task.requests(rows, tokenizer, protocol, samples=0)


@pytest.mark.parametrize("name, kwargs", [
    ("arith", {}),
    ("arith", {"unanswerable": 0.2}),
    ("sudoku", {"size": 6, "difficulty": "medium"}),
    ("crossword", {"size": 3}),
    ("gsm8k", {"data": str(GSM8K_TEST)}),
])
def test_a_task_spec_rebuilds_the_same_task(name, kwargs):
    task = get_task(name, **kwargs)
    assert get_task(**task.spec()) == task


def test_a_jsonl_spec_and_a_new_verifier_round_trip(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"question": "1+1?", "answer": "2"}\n')
    task = get_task(f"jsonl:{path}", verifier="sudoku")
    assert get_task(**task.spec()) == task and task.spec()["name"] == f"jsonl:{path}"


def test_gsm8k_builds_its_verifier_lenient_about_percent():
    gsm8k = get_task("gsm8k", data=str(GSM8K_TEST))
    row = {"id": "g", "answer": "Half of them.\n#### 25"}
    assert gsm8k.build_verifier().verify("<think>x</think>\\boxed{25\\%}", row).outcome == "correct"
    # the same verifier name without the task's options is strict
    strict = get_task("jsonl:x", verifier="math").build_verifier()
    assert strict.verify("<think>x</think>\\boxed{25\\%}", row).outcome == "wrong"
    # another verifier drops options meant for math
    assert get_task("gsm8k", data=str(GSM8K_TEST), verifier="sudoku").verifier_options == {}


def test_a_users_file_with_unanswerable_rows_offers_idk(tmp_path, tokenizer):
    protocol = ThinkingProtocol()
    path = tmp_path / "mine.jsonl"
    path.write_text('{"question": "Ann has some pens. How many?", "answer": null, "answerable": false}\n'
                    '{"question": "1+1?", "answer": "2"}\n')
    task = get_task(f"jsonl:{path}")
    assert all("\\boxed{IDK}" in task.prompt(row, tokenizer, protocol) for row in task.rows(2))
    path.write_text('{"question": "1+1?", "answer": "2"}\n')  # rewritten: no such rows any more
    assert "IDK" not in task.prompt(task.rows(1)[0], tokenizer, protocol)


def test_unknown_task_names_the_choices():
    with pytest.raises(ValueError, match="arith"):
        get_task("chess")



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
    assert "\\boxed{IDK}" in task.full_instruction and "IDK" not in ArithTask().full_instruction


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


def test_arith_worked_thoughts_end_in_the_answer_and_unanswerable_ones_say_why():
    task = ArithTask(unanswerable=0.5)
    rows = task.rows(60)
    for row in rows:
        thought = task.worked_thought(row)
        if row["answerable"]:
            assert thought.endswith(f"= {row['answer']}.")
            assert str(_solve(row)) == row["answer"]
        else:
            assert "cannot be known" in thought and row["answer"] is None
    assert {row["answerable"] for row in rows} == {True, False}
    assert get_task("gsm8k").worked_thought({"question": "q", "answer": "1"}) is None  # no thought: a bare closing
