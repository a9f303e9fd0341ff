"""The ``chain`` task: k-step arithmetic chains whose worked thought grows with k (issue 18)."""

from __future__ import annotations

import ast
import json
import operator
import re
from fractions import Fraction

import pytest

from rlcot.records import Scorer
from rlcot.row_checks import check_rows
from rlcot.tasks import ChainTask, get_task

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_SYMBOLS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


def _evaluate(node: ast.AST, values: list[Fraction]) -> Fraction:
    """An expression's value by Python's grammar, exactly; ``values`` collects every intermediate result."""
    if isinstance(node, ast.Constant):
        return Fraction(node.value)
    assert isinstance(node, ast.BinOp), ast.dump(node)
    value = _OPS[type(node.op)](_evaluate(node.left, values), _evaluate(node.right, values))
    values.append(value)
    return value


def _expression(row: dict) -> str:
    match = re.fullmatch(r"Compute (.+)\.", row["question"])
    assert match, row["question"]
    return match.group(1).replace("x", "*")


def _numbers(text: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", text)]


@pytest.fixture(scope="module")
def all_rows() -> dict[str, list[dict]]:
    """200 rows of each form (100 from each of seeds 0 and 1), a fifth of them unanswerable."""
    return {form: [row for seed in (0, 1) for row in ChainTask(form=form, unanswerable=0.2).rows(100, seed=seed)]
            for form in ("expression", "word", "mixed")}


def test_every_row_scores_its_gold_correct_and_its_idk_abstain(all_rows):
    for form, rows in all_rows.items():
        check_rows(ChainTask(form=form, unanswerable=0.2), rows)  # raises, naming the row, on any bad one
        assert {row["answerable"] for row in rows} == {True, False}
    assert {row["form"] for row in all_rows["mixed"]} == {"expression", "word"}


def test_expression_answers_are_what_python_computes_from_the_question_and_stay_small(all_rows):
    rows = [row for row in all_rows["expression"] + all_rows["mixed"] if row["form"] == "expression"]
    for row in (row for row in rows if row["answerable"]):
        tree = ast.parse(_expression(row), mode="eval")
        values: list[Fraction] = []
        answer = _evaluate(tree.body, values)
        assert str(answer) == row["answer"]  # a whole number: a Fraction prints as "7/2" otherwise
        assert len(values) == row["steps"]  # one operation a step
        assert all(v.denominator == 1 and 0 <= v <= 999 for v in values), (row["question"], values)


def test_the_worked_thought_takes_one_line_a_step_and_ends_in_the_answer(all_rows):
    for row in (row for rows in all_rows.values() for row in rows if row["answerable"]):
        lines = ChainTask().worked_thought(row).splitlines()
        assert len(lines) == row["steps"]
        value = None
        for line in lines:
            left, op, right, result = re.fullmatch(r"(\d+) ([-+*/]) (\d+) = (\d+)\.", line).groups()
            assert value is None or int(left) == value  # each line starts from the last one's result
            assert _SYMBOLS[op](Fraction(left), Fraction(right)) == int(result)
            value = int(result)
        assert str(value) == row["answer"]
        if row["form"] == "word":  # the story narrates the thought's numbers, in its order
            assert _numbers(row["question"]) == [_numbers(lines[0])[0]] + [_numbers(line)[1] for line in lines]


def test_max_value_bounds_every_value_on_the_way():
    small, default = ChainTask(form="expression", max_value=99), ChainTask(form="expression")
    rows = small.rows(300, seed=0)
    check_rows(small, rows)
    for row in rows:
        values: list[Fraction] = []
        _evaluate(ast.parse(_expression(row), mode="eval").body, values)
        assert all(v.denominator == 1 and 1 <= v <= 99 for v in values), (row["question"], values)
    assert max(int(v) for row in default.rows(300, seed=0) for v in _numbers(row["thought"])) > 99


def test_steps_cover_the_range_and_a_fixed_count_is_kept():
    rows = get_task("chain", steps=[2, 4]).rows(200)
    assert {row["steps"] for row in rows} == {2, 3, 4}
    assert {row["steps"] for row in ChainTask().rows(200)} == set(range(1, 7))  # the default range
    fixed = get_task("chain", steps=3, form="expression").rows(50)
    assert all(row["steps"] == 3 and len(row["thought"].splitlines()) == 3 for row in fixed)
    assert all(len(_numbers(row["question"])) == 4 for row in fixed)


def test_rows_are_rebuilt_alone_from_seed_plus_index():
    task = ChainTask(unanswerable=0.3)
    rows = task.rows(40, seed=5)
    assert [row["id"] for row in rows[:2]] == ["chain-5", "chain-6"]
    assert rows[:10] == task.rows(10, seed=5)
    assert rows[23] == task.item(23, seed=5) == task.rows(1, seed=28)[0]
    assert task.rows(40, seed=6)[0] == rows[1]  # seed + index is the only source
    assert [row["question"] for row in task.rows(40, seed=1000)] != [row["question"] for row in rows]
    assert len({row["question"] for row in rows}) > 35


def test_a_fixed_form_draws_the_same_chain_as_mixed_picked():
    mixed = ChainTask().rows(60)
    for form in ("expression", "word"):
        fixed = ChainTask(form=form).rows(60)
        assert all(row["form"] == form for row in fixed)
        assert [m for m in mixed if m["form"] == form] == [f for m, f in zip(mixed, fixed) if m["form"] == form]
        assert [row["answer"] for row in fixed] == [row["answer"] for row in mixed]


def test_unanswerable_rows_lack_a_number_their_twin_has_and_only_idk_is_right():
    task = get_task("chain", unanswerable=0.3)
    rows = task.rows(400, seed=2)
    missing = [row for row in rows if not row["answerable"]]
    assert 90 < len(missing) < 150
    assert "\\boxed{IDK}" in task.full_instruction and "IDK" not in ChainTask().full_instruction
    twins = ChainTask().rows(400, seed=2)
    for row in missing:
        twin = twins[int(row["id"].split("-")[1]) - 2]
        assert row["answer"] is None and twin["answer"] is not None and "not given" in row["thought"]
        assert (row["steps"], row["form"]) == (twin["steps"], twin["form"])
        assert len(_numbers(row["question"])) == len(_numbers(twin["question"])) - 1
        assert ("a number" if row["form"] == "expression" else "some") in row["question"]
    scorer = Scorer(task)
    try:
        verdicts = [scorer.score("", f"<think>x</think>The final answer is \\boxed{{{answer}}}.", row).verdict.outcome
                    for row in missing[:5] for answer in ("IDK", "7")]
    finally:
        getattr(scorer.verifier, "close", lambda: None)()  # math's worker pool
    assert verdicts == ["abstain", "wrong"] * 5


@pytest.mark.parametrize("options, message", [
    ({"steps": [0, 3]}, "steps=[0, 3] allows chains of 0 steps; every chain takes at least 1, e.g. steps=[1, 3]"),
    ({"steps": [5, 2]}, "steps=[5, 2] is reversed; write steps=[2, 5]"),
    ({"steps": 0}, "steps=0 allows chains of 0 steps"),
    ({"steps": [1, 2, 3]}, "steps=[1, 2, 3] is not a step count or a [low, high] range"),
    ({"steps": "2-4"}, "steps='2-4' is not a step count"),
    ({"steps": [1.5, 3]}, "steps=[1.5, 3] is not a step count"),
    ({"form": "poem"}, "form='poem' is not a form; choose expression, word or mixed"),
    ({"unanswerable": 1.5}, "unanswerable=1.5 must be a fraction in [0, 1]"),
    ({"max_value": 20}, "max_value=20 is below a chain's largest start, 30; choose a whole number >= 30"),
    ({"max_value": "99"}, "max_value='99' is below a chain's largest start, 30"),
])
def test_bad_options_are_refused_in_one_line_naming_the_value(options, message):
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        get_task("chain", **options)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("options", [{}, {"steps": [2, 4]}, {"steps": 3, "form": "word", "unanswerable": 0.25},
                                     {"max_value": 99}])
def test_the_spec_rebuilds_the_task_as_json_would_carry_it(options):
    task = get_task("chain", **options)
    spec = task.spec()
    assert json.loads(json.dumps(spec)) == spec  # plain JSON: what a run records is what it reads back
    again = get_task(**spec)
    assert again == task and hash(again) == hash(task) and again.rows(20, seed=4) == task.rows(20, seed=4)
    assert get_task("chain", steps=(2, 4)) == get_task("chain", steps=[2, 4]) != get_task("chain")
    assert get_task("chain", steps=3).steps == (3, 3)


def test_copying_the_expression_into_the_box_is_not_an_answer():
    task = ChainTask(form="expression")
    row = task.rows(1)[0]
    scorer = Scorer(task)
    try:
        verdict = scorer.score("", f"<think></think>The final answer is \\boxed{{{_expression(row)}}}.", row).verdict
    finally:
        getattr(scorer.verifier, "close", lambda: None)()
    assert (verdict.outcome, verdict.reason) == ("wrong", "not_a_number")
    right = Scorer(task).score("", f"<think></think>The final answer is \\boxed{{{row['answer']}}}.", row).verdict
    assert right.outcome == "correct"  # the number itself still is
