"""Hostile input to the CLIs (issue 16): each is refused up front, in one line that names it and the fix."""

from __future__ import annotations

import json
import re
import sys

import pytest

from rlcot import models, records, row_checks, runinfo
from rlcot.builtin_models import tiny_llama
from rlcot.tasks import get_task
from rlcot.verifiers import HedgeScheme, Verdict, get_verifier


def _write_rows(path, rows) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def strict_verifier(answer: str, example) -> Verdict:
    """A user's verifier that refuses rows it cannot read: check_rows must ask it, not guess."""
    if "units" not in example:
        raise ValueError("this verifier needs a 'units' field")
    return Verdict("correct" if example["answer"] in answer else "wrong")


# ------------------------------------------------------------------ 1. duplicate row ids


def test_two_rows_with_one_id_are_refused_naming_both_lines(tmp_path):
    # today the second row's prompt is scored against the first row's gold
    path = _write_rows(tmp_path / "rows.jsonl", [{"id": "same", "question": "2+2?", "answer": "4"},
                                                 {"id": "same", "question": "100+250?", "answer": "350"}])
    with pytest.raises(ValueError, match=r"rows.jsonl: id 'same' on lines 1 and 2; ids must be unique: "
                                         r"rename one or drop the id field"):
        get_task(f"jsonl:{path}").rows(5)


def test_an_id_equal_to_another_rows_generated_id_is_refused(tmp_path):
    # line 2 has no id, so it is named rows-2: the id line 1 claims
    path = _write_rows(tmp_path / "rows.jsonl", [{"id": "rows-2", "question": "2+2?", "answer": "4"},
                                                 {"question": "3+3?", "answer": "6"}])
    with pytest.raises(ValueError, match=r"id 'rows-2' on lines 1 and 2 \(line 2 has no id, so it is named rows-2\)"):
        get_task(f"jsonl:{path}").rows(5)


def test_gsm8k_file_rows_with_one_id_twice_are_refused(tmp_path):
    path = _write_rows(tmp_path / "test.jsonl", [{"id": 7, "question": "a?", "answer": "#### 1"},
                                                 {"question": "b?", "answer": "#### 2"},
                                                 {"id": "7", "question": "c?", "answer": "#### 3"}])
    # 7 and "7" are one id: the sweep keys and the sampling seeds read str(id)
    with pytest.raises(ValueError, match=r"id '7' on lines 1 and 3"):
        get_task("gsm8k", data=path).rows(5)


def test_an_id_that_is_not_a_string_or_integer_is_refused(tmp_path):
    path = _write_rows(tmp_path / "rows.jsonl", [{"id": ["a"], "question": "2+2?", "answer": "4"}])
    with pytest.raises(ValueError, match=r"rows.jsonl:1: id \['a'\] is not a non-empty string or an integer"):
        get_task(f"jsonl:{path}").rows(5)


# ------------------------------------------------------------------ 2. rows that cannot be scored


BAD_ROWS = [
    ({"id": "ok", "question": "2+2?", "answer": "4"}, None),
    ({"id": "no-answer", "question": "2+2?"}, "the row has no 'answer'"),
    ({"id": "list", "question": "2+2?", "answer": [4]}, r"answer is \[4\] \(list\)"),
    ({"id": "dict", "question": "2+2?", "answer": {"v": 4}}, r"answer is \{'v': 4\} \(dict\)"),
    ({"id": "null", "question": "2+2?", "answer": None}, r"answer is None \(null\)"),
    ({"id": "empty", "question": "2+2?", "answer": ""}, "gives an empty gold"),
    # a gold the verifier cannot read: every answer would score 0 without a word
    ({"id": "unreadable", "question": "2+2?", "answer": "\\frac{"}, r"gold_unreadable: math-verify reads no value"),
    # math-verify keeps what it cannot parse as a string: this gold once scored its own copy correct (check_rows
    # passed it) and every other answer wrong
    ({"id": "dashes", "question": "2+2?", "answer": "---"}, r"gold_unreadable: .* the gold '---'"),
    ({"id": "blank-question", "question": "  ", "answer": "4"}, r"the question is '  '"),
    ({"id": "say-false", "question": "2+2?", "answer": "4", "answerable": "false"}, "answerable='false'"),
    # a number is a gold too, and so is a MATH solution: its boxes are the gold (1, 2), not the whole text
    ({"id": "number", "question": "2+2?", "answer": 4}, None),
    ({"id": "solution", "question": "x^2 = 3x - 2?", "answer": "So x = \\boxed{1} or \\boxed{2}."}, None),
    # an unanswerable row needs no answer: its gold is \boxed{IDK}
    ({"id": "idk", "question": "Ann has some pens. How many?", "answerable": False}, None),
]


def test_check_rows_names_every_row_that_cannot_be_scored_by_file_line_and_id(tmp_path):
    path = _write_rows(tmp_path / "rows.jsonl", [row for row, _ in BAD_ROWS])
    task = get_task(f"jsonl:{path}")
    rows = task.rows(len(BAD_ROWS))
    with pytest.raises(ValueError) as caught:
        row_checks.check_rows(task, rows)
    message = str(caught.value)
    bad = [(number, row, reason) for number, (row, reason) in enumerate(BAD_ROWS, 1) if reason]
    assert message.startswith(f"{len(bad)} of {len(BAD_ROWS)} task rows cannot be scored")
    for number, row, reason in bad[:5]:
        line = next(text for text in message.splitlines() if text.strip().startswith(f"{path}:{number} "))
        assert line.strip().startswith(f"{path}:{number} (id {row['id']!r}): ")
        assert re.search(reason, line), (reason, line)
    assert message.splitlines()[-1].strip() == f"and {len(bad) - 5} more"
    row_checks.check_rows(task, [row for row, (_, reason) in zip(rows, BAD_ROWS) if not reason])  # nothing raised


def test_check_rows_gives_the_reasons_of_the_rows_it_left_unlisted(tmp_path):
    # the bad rows past the first five, in a file of their own, so the error lists them
    unlisted = [item for item in BAD_ROWS if item[1]][row_checks.ROWS_SHOWN:]
    path = _write_rows(tmp_path / "rest.jsonl", [row for row, _ in unlisted])
    task = get_task(f"jsonl:{path}")
    with pytest.raises(ValueError) as caught:
        row_checks.check_rows(task, task.rows(10))
    lines = str(caught.value).splitlines()[1:]
    assert len(lines) == len(unlisted)
    for number, ((row, reason), line) in enumerate(zip(unlisted, lines), 1):
        assert line.strip().startswith(f"{path}:{number} (id {row['id']!r}): ")
        assert re.search(reason, line), (reason, line)


def test_check_rows_names_a_generated_row_by_its_id():
    task = get_task("arith")
    rows = task.rows(3)
    rows[1] = {key: value for key, value in rows[1].items() if key != "answer"}
    with pytest.raises(ValueError, match=r"1 of 3 task rows cannot be scored.*\n  id 'arith-1': the row has no 'answer'"):
        row_checks.check_rows(task, rows)
    row_checks.check_rows(get_task("arith", unanswerable=0.5), get_task("arith", unanswerable=0.5).rows(20))


def test_check_rows_asks_the_tasks_own_verifier_about_each_row(tmp_path):
    path = _write_rows(tmp_path / "rows.jsonl", [{"question": "2 m + 2 m?", "answer": "4", "units": "m"},
                                                 {"question": "2+2?", "answer": "4"}])
    task = get_task(f"jsonl:{path}", verifier="tests.test_hostile_inputs:strict_verifier")
    with pytest.raises(ValueError, match=r"1 of 2 .*\n  \S+rows.jsonl:2 \(id 'rows-2'\): this verifier needs a "
                                         r"'units' field$"):
        row_checks.check_rows(task, task.rows(2))


def test_check_rows_lists_a_puzzle_row_with_a_broken_solution():
    task = get_task("sudoku")
    rows = task.rows(2, seed=1)
    rows[0] = {**rows[0], "solution": rows[0]["solution"][:-1]}  # one cell short
    with pytest.raises(ValueError, match=r"1 of 2 task rows cannot be scored.*\n  id '"):
        row_checks.check_rows(task, rows)
    row_checks.check_rows(task, task.rows(2, seed=1))


# ------------------------------------------------------------------ 3. hedge schemes


@pytest.mark.parametrize("text, field, said", [
    ("wrong: .nan\n", "wrong", "nan"),
    ("correct: -.inf\n", "correct", "-inf"),
    ("unparsed: .inf\n", "unparsed", "inf"),
    ("abstain: true\n", "abstain", "True"),  # YAML's true is a bool, not 1
])
def test_a_scheme_file_with_a_non_finite_or_non_numeric_value_names_the_field_and_the_file(tmp_path, text, field,
                                                                                          said):
    path = tmp_path / "odd.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"odd.yaml: scheme field '{field}' is {said}\b"):
        records.resolve_scheme(str(path))


def test_a_scheme_built_in_code_refuses_nan_too():
    with pytest.raises(ValueError, match="'wrong' is nan, but scheme values must be finite"):
        HedgeScheme(wrong=float("nan"))
    assert HedgeScheme(unparsed=None).unparsed is None


# ------------------------------------------------------------------ 4. user verifier modules


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path)] + list(sys.path))
    for name in ("boom", "needsdep", "partial", "syntaxbad"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


@pytest.mark.parametrize("source, spec, message", [
    # raises at import: the module's name, the exception, and how to see the traceback
    ("raise RuntimeError('no config')\n", "boom:f",
     r"verifier 'boom:f': importing module 'boom' raised RuntimeError: no config; fix the module"),
    ("def f(:\n", "syntaxbad:f", r"importing module 'syntaxbad' raised SyntaxError"),
    ("import sys\nsys.exit(3)\n", "boom:f", r"importing module 'boom' raised SystemExit: 3"),
    # a dependency of the module is missing: not "check the path" for a module that is right there
    ("import not_installed_xyz\n", "needsdep:f",
     r"module 'needsdep' imports 'not_installed_xyz', which is not installed; install it"),
    # the attribute is missing: say what the module has
    ("def exact(a, e):\n    return True\n\nclass Check:\n    pass\n", "partial:exakt",
     r"module 'partial' has no attribute 'exakt'; it defines Check, exact"),
    ("def exact(a, e):\n    return True\n", "./partial.py:exakt",
     r"file './partial.py' has no attribute 'exakt'; it defines exact"),
    ("import sys\nsys.exit(3)\n", "./boom.py:f", r"boom.py failed to load \(SystemExit: 3\); fix the file"),
])
def test_a_broken_user_verifier_is_one_line_naming_the_module(module_dir, source, spec, message):
    name = spec.split(":")[0].removeprefix("./").removesuffix(".py")
    (module_dir / f"{name}.py").write_text(source)
    with pytest.raises(ValueError, match=message):
        get_verifier(spec)


def test_a_verifier_spec_without_module_or_attribute_says_the_form():
    for spec in (":f", "rlcot.verifiers.base:"):
        with pytest.raises(ValueError, match=r"names no (module|attribute); write module.path:attr"):
            get_verifier(spec)


# ------------------------------------------------------------------ 5. model directories


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the old code asked the hub about a broken directory


def test_a_model_directory_with_a_broken_config_says_so(tmp_path, offline):
    (tmp_path / "config.json").write_text('{"model_type": "llama",\n  "hidden_size": 64,\n}\n')
    with pytest.raises(ValueError, match=r"config.json is not valid JSON \(.* at line 3, column 1\); fix it"):
        models.load_policy(str(tmp_path), device="cpu", dtype="fp32")


def test_a_model_directory_with_only_a_config_names_what_is_missing(tmp_path, offline):
    tiny_llama().config.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"has no tokenizer files \(tokenizer.json, tokenizer_config.json, \.\.\.\) "
                                         r"and no weights \(\*.safetensors/\*.bin\); save the model there"):
        models.load_policy(str(tmp_path), device="cpu", dtype="fp32")


def test_a_model_path_that_does_not_exist_says_it_does_not_exist(tmp_path, offline):
    with pytest.raises(ValueError, match=r"model '\S+nope': no such directory .*check the path"):
        models.load_policy(str(tmp_path / "nope"), device="cpu", dtype="fp32")
    with pytest.raises(ValueError, match=r"no such directory"):
        models.load_policy("./runs/mine", device="cpu", dtype="fp32")


# ------------------------------------------------------------------ 6. training runs with nothing saved


def test_a_run_with_no_checkpoints_picked_at_last_says_to_train_it_first(tmp_path, offline):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}\n")
    expected = (rf"{run}@last: {run} has no checkpoint-N or final weights \(config.json\); train it first, or pass "
                "a model directory")
    with pytest.raises(ValueError, match=expected):
        runinfo.split_run_pick(f"{run}@last")
    # the run itself, handed to a loader, says the same
    with pytest.raises(ValueError, match=rf"{run} has no checkpoint-N or final weights"):
        models.load_policy(str(run), device="cpu", dtype="fp32")


def test_a_run_with_a_checkpoint_is_picked(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint-4").mkdir(parents=True)
    assert runinfo.split_run_pick(f"{run}@last") == (run, "last")
    assert runinfo.split_run_pick(str(run)) is None and runinfo.split_run_pick(f"{tmp_path}/other@2") is None
