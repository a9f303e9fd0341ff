"""The scored record: one function from (prompt, completion, row, task, scheme) to a verdict and a score."""

from __future__ import annotations

import pytest

from rlcot.records import CompletionRow, Scorer, resolve_scheme
from rlcot.tasks import Task, get_task
from rlcot.thinking import ThinkingProtocol
from rlcot.verifiers import BINARY, HedgeScheme

PROMPT = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n"  # pre-fills <think>
ROW = {"id": "r1", "answer": "4"}


def _exact_task():
    """A task scored by a user's plain function (tests/verifiers/test_base.py:exact)."""
    return Task(name="rows", description="user rows", verifier="tests.verifiers.test_base:exact")


def score_completion(prompt, completion, row, task, scheme="default", protocol=None, sample=0, budget=None):
    """One completion scored as every caller scores it: a ``Scorer`` for the task."""
    return Scorer(task, scheme, protocol).score(prompt, completion, row, sample, budget)


def test_a_completion_trl_hands_over_gets_its_prefilled_think_back():
    # TRL decodes only the sampled tokens: the <think> the prompt pre-filled is missing.
    completion = "2+2 is 4 so \\boxed{4} and I keep thinking"
    record = score_completion(PROMPT, completion, ROW, _exact_task())
    assert (record.verdict.outcome, record.verdict.reason) == ("unparsed", "no_answer")
    assert record.completion == "<think>\n" + completion
    # without a pre-filling prompt the same text has no tags: all of it is the answer
    assert score_completion("", completion, ROW, _exact_task()).verdict.outcome == "correct"
    # a completion that closes its thinking scores as it should
    closed = score_completion(PROMPT, "2+2 is 4</think>\\boxed{4}", ROW, _exact_task())
    assert closed.verdict.outcome == "correct" and closed.score == 1.0


def test_a_completion_that_already_has_its_opening_is_not_doubled():
    completion = "<think>\n2+2 is 4</think>\\boxed{4}"
    record = score_completion(PROMPT, completion, ROW, get_task("arith"))
    assert record.completion == completion and record.verdict.outcome == "correct"


def test_the_protocols_own_tags_split_the_completion():
    protocol = ThinkingProtocol(open_tag="<reason>", close_tag="</reason>")
    completion = "<reason>maybe \\boxed{5}</reason>\\boxed{4}"
    mine = score_completion("", completion, ROW, get_task("arith"), protocol=protocol)
    assert mine.verdict.outcome == "correct" and not mine.verdict.hedged  # "maybe" was thinking, not answer
    # read with the default tags, both boxes would be the answer: two different answers
    default = score_completion("", completion, ROW, get_task("arith"))
    assert (default.verdict.outcome, default.verdict.reason) == ("wrong", "multiple_answers")


def test_the_record_carries_row_sample_budget_scheme_and_score():
    record = score_completion(PROMPT, "x</think>I think \\boxed{5}", ROW, get_task("arith"), scheme="default",
                              sample=3, budget=64)
    assert (record.row_id, record.sample, record.budget, record.scheme) == ("r1", 3, 64, "default")
    assert record.verdict.outcome == "wrong" and record.verdict.hedged and record.score == -2.0
    assert record.to_dict()["verdict"]["outcome"] == "wrong"
    binary = score_completion(PROMPT, "x</think>\\boxed{4}", ROW, get_task("arith"), scheme="binary")
    assert (binary.scheme, binary.score) == ("binary", 1.0)


def test_the_task_builds_its_verifier_with_its_options():
    gsm8k = get_task("gsm8k", data="unused.jsonl")
    row = {"id": "g", "answer": "So 25 percent.\n#### 25"}
    assert score_completion(PROMPT, "x</think>\\boxed{25\\%}", row, gsm8k).verdict.outcome == "correct"
    strict = get_task("arith")
    assert score_completion(PROMPT, "x</think>\\boxed{25\\%}", row, strict).verdict.reason == "percent_mismatch"


def test_score_many_keeps_order_and_matches_one_by_one():
    scorer = Scorer(get_task("arith"), "default")
    items = [CompletionRow({"id": str(i), "answer": str(i)}, f"x</think>\\boxed{{{i % 3}}}", PROMPT, sample=i)
             for i in range(7)]
    batch = scorer.score_many(items)
    assert [r.row_id for r in batch] == [str(i) for i in range(7)]
    assert batch == [scorer.score(PROMPT, it.completion, it.row, it.sample) for it in items]
    assert [r.verdict.outcome for r in batch] == ["correct" if i % 3 == i else "wrong" for i in range(7)]


@pytest.mark.parametrize("line, message", [
    ({"completion": "\\boxed{4}", "answer": "4", "row": 3}, "'row' must be an object"),  # a row that is a number
    ({"answer": "4", "completion": None}, "'completion' must be a string"),  # a flat row with no completion
    ({"row": {"answer": "4"}, "completion": ["\\boxed{4}"]}, "'completion' must be a string"),
    ({"row": {"answer": "4"}, "completion": "x", "sample": -1}, "'sample' must be an integer"),
    ({"row": {"answer": "4"}, "completion": "x", "sample": True}, "'sample' must be an integer"),
    ({"row": {"answer": "4"}, "completion": "x", "budget": "64"}, "'budget' must be an integer"),
    ({"row": {"answer": "4"}, "completion": "x", "prompt": 5}, "'prompt' must be a string"),
])
def test_a_bad_completion_row_names_the_field_and_what_it_must_be(line, message):
    with pytest.raises(ValueError, match=message):
        CompletionRow.from_dict(line)


def test_a_flat_completion_row_is_its_row_beside_its_completion():
    """Most generation tools write the row's fields and the completion in one object."""
    line = {"id": "q1", "question": "2+2?", "answer": "4", "completion": "</think>\\boxed{4}", "sample": 2,
            "verdict": {"outcome": "wrong"}, "score": -4.0, "scheme": "default"}  # a scored line, scored again
    item = CompletionRow.from_dict(line)
    assert item.row == {"id": "q1", "question": "2+2?", "answer": "4"}
    assert (item.completion, item.sample, item.row_id) == ("</think>\\boxed{4}", 2, "q1")


def test_schemes_resolve_by_name_file_or_value(tmp_path):
    assert resolve_scheme("binary") == ("binary", BINARY)
    assert resolve_scheme(HedgeScheme()) == ("default", HedgeScheme())
    assert resolve_scheme(HedgeScheme(wrong=-9))[0] == "custom"
    path = tmp_path / "harsh.yaml"
    path.write_text("wrong: -8\nunparsed: -1\n")
    assert resolve_scheme(str(path)) == ("harsh", HedgeScheme(wrong=-8, unparsed=-1))
    for text, message in (("wrongly: 1\n", "unknown scheme field"), ("wrong: lots\n", "must be numbers"),
                          ("- 1\n", "expected a mapping")):
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            resolve_scheme(str(path))
    with pytest.raises(ValueError, match="not default, binary"):
        resolve_scheme("harsh")
