"""Built-in tasks: seeded per item, rebuildable alone, right answers."""

from __future__ import annotations

import re
import shutil

import pytest

from rlcot.generation import derive_seed
from rlcot.tasks import GSM8K_DIR, ArithTask, get_task
from rlcot.thinking import ThinkingProtocol

GSM8K_TEST = GSM8K_DIR / "test.jsonl"  # the copy shipped in the package


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
    ("gsm8k", {}),
    ("gsm8k", {"split": "train"}),
    ("gsm8k", {"hub_id": "openai/gsm8k"}),
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


def test_gsm8k_reads_its_shipped_splits_offline_with_the_ids_the_same_file_gets(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    test = get_task("gsm8k").rows(2000)
    assert len(test) == 1319 and [test[0]["id"], test[-1]["id"]] == ["gsm8k-test-1", "gsm8k-test-1319"]
    assert test[0]["question"].startswith("Janet\u2019s ducks lay 16 eggs")  # the published test split, in order
    # ids enter the keys of stored traces: a copy of the file passed with --data gets the very same rows
    copy = tmp_path / "test.jsonl"
    shutil.copyfile(GSM8K_TEST, copy)
    assert get_task("gsm8k", data=str(copy)).rows(2000) == test
    train = get_task("gsm8k", split="train").rows(8000)
    assert len(train) == 7473 and [train[0]["id"], train[-1]["id"]] == ["gsm8k-train-1", "gsm8k-train-7473"]
    # the spec (in every sweep key and run record) names no path, so it is the same wherever rlcot is installed
    assert get_task("gsm8k").spec() == {"name": "gsm8k", "data": None, "options": {}}


def test_gsm8k_from_an_unreachable_hub_says_how_to_read_the_shipped_copy(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(ValueError, match="drop hub_id to read the test split shipped with rlcot.*--data"):
        get_task("gsm8k", hub_id="rlcot-tests/no-such-dataset").rows(2)


@pytest.mark.parametrize("options, message", [
    ({"split": "validation"}, "split='validation' is not shipped; choose test or train"),
    ({"data": "mine.jsonl", "hub_id": "openai/gsm8k"}, "keep one"),  # two sources of rows: which one?
])
def test_gsm8k_refuses_a_split_it_does_not_ship_and_two_sources(options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        get_task("gsm8k", **options)


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
