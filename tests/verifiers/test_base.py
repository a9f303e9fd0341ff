"""Rules every verifier shares, the registry, and users' own verifiers."""

from __future__ import annotations

import pytest

from verifiers import FunctionVerifier, Verdict, Verifier, boxed_contents, get_verifier, last_boxed


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


def test_boxed_contents_handles_nesting_and_ignores_unclosed_boxes():
    assert boxed_contents("\\boxed{\\frac{1}{2}} and \\fbox{3} then \\boxed{4") == ["\\frac{1}{2}", "3"]
    assert boxed_contents("{" * 1_000_000) == []


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
        ("verifiers.base:missing", "has no attribute 'missing'"),
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

    import verifiers

    plugin = metadata.EntryPoint(name="exact-plugin", value="tests.verifiers.test_base:Exact",
                                 group=verifiers.ENTRY_POINT_GROUP)
    monkeypatch.setattr(verifiers.metadata, "entry_points",
                        lambda group: [plugin] if group == verifiers.ENTRY_POINT_GROUP else [])
    assert isinstance(get_verifier("exact-plugin"), Exact)
    assert "exact-plugin" in verifiers.available()


def test_verifiers_import_no_torch():
    import subprocess
    import sys

    code = "import sys, verifiers, verifiers.base, verifiers.hedging; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


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
