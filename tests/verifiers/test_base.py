"""Rules every verifier shares, the registry, and users' own verifiers."""

from __future__ import annotations

import sys

import pytest

from rlcot.verifiers import DuckTypedVerifier, FunctionVerifier, Verdict, Verifier, get_verifier, last_boxed
from rlcot.verifiers.sections import split_completion


def exact(answer: str, example) -> bool | None:
    """A user's plain-function verifier: the last box equals the gold; None when there is no box."""
    boxed = last_boxed(answer)
    return None if boxed is None else boxed == example["answer"]


class Exact(Verifier):
    name = "exact"

    def judge(self, answer, example):
        boxed = last_boxed(answer)
        if boxed is None:
            return Verdict("unparsed", reason="no_answer")
        return Verdict("correct" if boxed == example["answer"] else "wrong", answer=boxed)


class OnlyVerify:
    """A user's verifier that is no Verifier: only ``verify(completion, example)``; it records what it saw."""

    def __init__(self):
        self.seen = []

    def verify(self, completion, example):
        self.seen.append(completion)
        section = split_completion(completion).answer
        if section is None:
            return Verdict("unparsed", reason="no_answer")
        return Verdict("correct" if last_boxed(section) == example["answer"] else "wrong", answer=section)


ONLY_VERIFY = OnlyVerify()
EXAMPLE = {"answer": "4"}


@pytest.mark.parametrize(
    "completion, outcome, hedged, reason",
    [
        ("<think>2+2</think>\\boxed{4}", "correct", False, None),
        ("<think>so \\boxed{4}</think>", "unparsed", False, "no_answer"),  # the answer only inside thinking
        ("<think>so \\boxed{4}", "unparsed", False, "no_answer"),  # thinking never closed
        ("<think>x</think>   ", "unparsed", False, "no_answer"),  # empty answer section
        ("\\boxed{4}", "correct", False, None),  # no <think> at all: all answer
        ("<think>x</think>I think \\boxed{4}", "correct", True, None),
        ("<think>x</think>I don't know.", "abstain", False, "abstained"),
        ("<think>x</think>\\boxed{IDK}", "abstain", False, "abstained"),
        ("<think>x</think>I don't know, \\boxed{5}", "wrong", True, None),  # an answer given: judged, and hedged
        ("<think>I don't know</think>\\boxed{5}", "wrong", False, None),  # doubt inside thinking is not hedging
    ],
)
def test_shared_rules_apply_to_every_verifier(completion, outcome, hedged, reason):
    for verifier in (Exact(), FunctionVerifier(exact)):
        verdict = verifier.verify(completion, EXAMPLE)
        assert (verdict.outcome, verdict.hedged) == (outcome, hedged)
        if reason:
            assert verdict.reason == reason
        # verify is verify_answer on the default split: the same verdict from the section alone
        assert verifier.verify_answer(split_completion(completion).answer, EXAMPLE) == verdict


@pytest.mark.parametrize(
    "section, outcome, reason",
    [
        (None, "unparsed", "no_answer"),  # the caller's split found the thinking never closed
        ("", "unparsed", "no_answer"),  # an empty section
        ("\\boxed{4} <think>", "correct", None),  # tags in a split section are text, not split again
        ("\\boxed{\\textbf{IDK}}", "abstain", "abstained"),  # formatting around the abstain token
        ("IDK", "abstain", "abstained"),  # a bare abstain token as the whole answer
        ("idk.", "abstain", "abstained"),  # ... in any case, with a full stop
        ("\\boxed{IDK} then \\boxed{4}", "correct", None),  # only the final box counts as the token
    ],
)
def test_verify_answer_applies_the_shared_rules_to_a_section_split_by_the_caller(section, outcome, reason):
    verdict = Exact().verify_answer(section, EXAMPLE)
    assert (verdict.outcome, verdict.reason) == (outcome, reason)


def test_batches_give_the_one_by_one_verdicts_in_order():
    completions = ["<think>x</think>\\boxed{4}", "<think>x", "\\boxed{5}", "<think>x</think>IDK"]
    sections = [split_completion(c).answer for c in completions]
    examples = [EXAMPLE] * len(completions)
    for verifier in (Exact(), FunctionVerifier(exact), get_verifier("tests.verifiers.test_base:OnlyVerify")):
        one_by_one = [verifier.verify(c, e) for c, e in zip(completions, examples)]
        assert verifier.verify_batch(completions, examples) == one_by_one
        assert verifier.verify_answer_batch(sections, examples) == one_by_one
        with pytest.raises(ValueError, match="3 answer sections but 4 examples"):
            verifier.verify_answer_batch(sections[:3], examples)


@pytest.mark.parametrize("spec", ["tests.verifiers.test_base:ONLY_VERIFY", "tests.verifiers.test_base:OnlyVerify"])
def test_a_duck_typed_verifier_gets_the_answer_section_api(spec):
    verifier = get_verifier(spec)
    assert isinstance(verifier, DuckTypedVerifier) and isinstance(verifier, Verifier)
    target = verifier.target
    target.seen.clear()
    assert verifier.verify_answer(None, EXAMPLE) == Verdict("unparsed", reason="no_answer")
    assert target.seen == []  # a section that does not exist is not shown to the user's code
    section = "a <think> inside the answer, then \\boxed{4}"  # "</think>" + this would split wrongly
    verdict = verifier.verify_answer(section, EXAMPLE)
    assert (verdict.outcome, verdict.answer) == ("correct", section)  # read back as exactly this section
    completion = "<think>hm</think>\\boxed{4}"
    assert verifier.verify(completion, EXAMPLE).outcome == "correct"
    assert target.seen[-1] == completion  # verify goes to the object unchanged


def test_a_duck_typed_verifier_with_its_own_verify_answer_keeps_it():
    class OwnRules(OnlyVerify):
        def verify_answer(self, section, example):
            return Verdict("abstain", reason="own rules")

    assert DuckTypedVerifier(OwnRules()).verify_answer("\\boxed{4}", EXAMPLE).reason == "own rules"


class Checked(Exact):
    """A domain that checks its rows and bounds what it reads."""

    def check_example(self, example):
        if not isinstance(example.get("answer"), str):
            raise ValueError(f"answer {example.get('answer')!r} is not a str; fix the row")

    def answer_section_limit(self, example):
        return 10


@pytest.mark.parametrize("completion", ["<think>x</think>\\boxed{4}", "<think>x", "", "IDK"])
def test_a_broken_row_fails_on_every_call_whatever_the_model_wrote(completion):
    with pytest.raises(ValueError, match="answer None is not a str"):
        Checked().verify(completion, {"answer": None})


def test_an_unanswerable_row_is_not_checked_by_the_domain_and_gets_the_base_limit():
    unanswerable = {"answer": None, "answerable": False}
    assert Checked().verify("<think>x</think>I think \\boxed{4}", unanswerable).reason == "unanswerable"
    huge = "<think>x</think>" + "\\boxed{4}" * 20_000  # 180 KB: no domain limit, the base's own
    assert Exact().verify(huge, unanswerable).reason == "too_long"


def test_a_section_over_the_domains_limit_is_too_long_and_unread():
    verdict = Checked().verify("<think>x</think>I think \\boxed{4}", EXAMPLE)
    assert (verdict.outcome, verdict.reason, verdict.hedged) == ("unparsed", "too_long", False)
    assert verdict.details == {"chars": 17, "limit": 10}


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda v: v.verify(b"\\boxed{4}", EXAMPLE), TypeError, "completion must be a str"),  # bytes, not text
        (lambda v: v.verify_answer(4, EXAMPLE), TypeError, "answer_section must be a str or None"),  # a number
        (lambda v: v.verify("\\boxed{4}", [("answer", "4")]), TypeError, "example must be a mapping"),  # pairs
        (lambda v: v.verify("\\boxed{4}", {"answer": "4", "answerable": "no"}), ValueError,
         "answerable='no'; set it to True or False"),  # a string is not a flag: "no" would read as true
        (lambda v: v.verify_batch(["\\boxed{4}"], []), ValueError, "1 completions but 0 examples"),  # zip would drop
        (lambda v: v.verify_batch([None], [EXAMPLE]), TypeError, "completions must be str"),  # a missing completion
    ],
)
def test_bad_arguments_say_what_is_wrong(call, error, message):
    with pytest.raises(error, match=message):
        call(Exact())


def test_answerable_none_is_an_ordinary_row():
    # datasets fills a column other rows carry with None: that row is answerable.
    assert Exact().verify("\\boxed{4}", {"answer": "4", "answerable": None}).outcome == "correct"


def test_a_verdict_refuses_an_unknown_outcome():
    with pytest.raises(ValueError, match="outcome 'maybe'"):
        Verdict("maybe")


def test_module_attr_loads_a_plain_function_and_a_class():
    assert get_verifier("tests.verifiers.test_base:exact").verify("\\boxed{4}", EXAMPLE).outcome == "correct"
    assert isinstance(get_verifier("tests.verifiers.test_base:Exact"), Exact)


@pytest.mark.parametrize(
    "name, message",
    [
        ("nope", "unknown verifier 'nope'"),
        ("no.such.module:f", "cannot import module 'no.such.module'"),
        ("rlcot.verifiers.base:missing", "has no attribute 'missing'"),
        ("", "empty"),
    ],
)
def test_bad_verifier_names_say_what_to_do(name, message):
    with pytest.raises(ValueError, match=message):
        get_verifier(name)


def test_a_function_returning_junk_is_refused():
    with pytest.raises(TypeError, match="return a Verdict, bool or None"):
        FunctionVerifier(lambda a, e: 3).verify("\\boxed{4}", EXAMPLE)


def test_entry_point_plugins_register_by_name(monkeypatch):
    from importlib import metadata

    from rlcot import verifiers

    plugin = metadata.EntryPoint(name="exact-plugin", value="tests.verifiers.test_base:Exact",
                                 group=verifiers.ENTRY_POINT_GROUP)
    monkeypatch.setattr(verifiers.metadata, "entry_points",
                        lambda group: [plugin] if group == verifiers.ENTRY_POINT_GROUP else [])
    assert isinstance(get_verifier("exact-plugin"), Exact)
    assert "exact-plugin" in verifiers.available()


def test_verifiers_import_neither_torch_nor_the_rest_of_rlcot():
    """rlcot.verifiers is pure Python: beside itself it loads only rlcot's own light __init__."""
    import subprocess
    import sys

    code = ("import sys, rlcot.verifiers, rlcot.verifiers.base, rlcot.verifiers.hedging, rlcot.verifiers.sections, "
            "rlcot.verifiers.workers, rlcot.verifiers.math, rlcot.verifiers.sudoku, rlcot.verifiers.crossword, "
            "rlcot.verifiers.sudoku_generator, rlcot.verifiers.crossword_generator; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch' "
            "or (m.startswith('rlcot') and m != 'rlcot' and not m.startswith('rlcot.verifiers'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "completion, outcome, hedged",
    [
        ("<think>x</think>\\boxed{IDK}", "abstain", False),
        ("<think>x</think>There is not enough information.", "abstain", False),
        ("<think>x</think>\\boxed{12}", "wrong", False),  # inventing the missing number is wrong
        ("<think>x</think>Maybe \\boxed{12}", "wrong", True),
        ("<think>x</think>Twelve.", "unparsed", False),
    ],
)
def test_unanswerable_rows_reward_only_abstaining(completion, outcome, hedged):
    verdict = Exact().verify(completion, {"answer": None, "answerable": False})
    assert (verdict.outcome, verdict.hedged) == (outcome, hedged)


def _readme_plugin() -> str:
    """The ten-line verifier the README shows: the first python block after "Your own verifier"."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    after = readme[readme.index("**Your own verifier in ten lines.**"):]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


MYCHECK = _readme_plugin()


def test_the_readme_plugin_is_ten_lines_of_code():
    code = [line for line in MYCHECK.splitlines() if line.strip()]
    assert len(code) <= 10 and "def exact" in MYCHECK


@pytest.mark.parametrize("spec", ["mycheck:exact", "./mycheck.py:exact", "mycheck.py:exact", "ABSOLUTE"])
def test_a_verifier_in_the_working_directory_loads_by_module_or_file(tmp_path, monkeypatch, spec):
    (tmp_path / "mycheck.py").write_text(MYCHECK)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])  # as the rlcot script
    monkeypatch.delitem(sys.modules, "mycheck", raising=False)
    spec = f"{tmp_path / 'mycheck.py'}:exact" if spec == "ABSOLUTE" else spec
    verifier = get_verifier(spec)
    assert verifier.verify("<think>x</think>\n42", {"answer": "42"}).outcome == "correct"
    assert verifier.verify("<think>x</think>\n41", {"answer": "42"}).outcome == "wrong"


def test_a_missing_verifier_file_or_module_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(ValueError, match=r"file './nope.py' does not exist"):
        get_verifier("./nope.py:exact")
    with pytest.raises(ValueError, match=r"cannot import module 'nope'.*\./nope\.py:ATTR"):
        get_verifier("nope:exact")
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ValueError, match=r"broken.py failed to load \(RuntimeError: boom\)"):
        get_verifier("./broken.py:f")
