"""The math verifier: strict extraction, exact integers, math-verify equivalence, a time bound in any thread."""

from __future__ import annotations

import os
import pickle
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlcot.verifiers import get_verifier
from rlcot.verifiers.base import OUTCOMES
from rlcot.verifiers.math import MathVerifier
from rlcot.verifiers.math_answers import compile_answer_pattern, gold_answer, gold_parts, plain_number

TIMEOUT = 1.0  # shorter than the default 2 s: the hostile cases below wait it out
# The time bound is a feature, so tests check it, with a margin no machine load flips: a bounded
# call returns ~10 ms after its deadline, an unbounded one after minutes, a queued one after
# several timeouts. Latency itself is measured in bench/verifier_speed.py, never asserted here.
BOUND_S = TIMEOUT + 1.5

GSM8K_GOLD = "He pays 10 * 100 = <<10*100=1000>>1000 dollars.\nThen 1000 + 200 = 1,200.\n#### 1,200"
MATH_GOLD = "We have $\\sin 60^\\circ = \\boxed{\\frac{\\sqrt{3}}{2}}$, so the answer is $\\boxed{\\frac{\\sqrt3}{2}}$."
TOWER = "<think>x</think>\\boxed{9^{9^{9^{9}}}}"
EASY = "<think>x</think>\\boxed{\\frac{1}{2}}"  # needs math-verify: not a plain number
TEN_THOUSAND_DIGITS = "9" * 10_000


@pytest.fixture(scope="module")
def math_verifier():
    verifier = MathVerifier(timeout=TIMEOUT).start()
    yield verifier
    verifier.close()


@pytest.mark.parametrize(
    "completion, gold, outcome, reason",
    [
        ("<think>so \\boxed{4}</think>The end.", "4", "unparsed", "no_answer"),  # the answer only in thinking
        ("<think>x</think>The answer is 4.", "4", "unparsed", "no_answer"),  # no box, no declared format: no guess
        ("<think>x</think>\\boxed{4}, no wait, \\boxed{5}", "4", "wrong", "multiple_answers"),  # then another
        ("<think>x</think>\\boxed{5}, no: \\boxed{4}", "4", "wrong", "multiple_answers"),  # even if the last is right
        ("<think>x</think>\\boxed{4}. So \\boxed{4}.", "4", "correct", None),  # the same answer twice is fine
        ("<think>x</think>\\boxed{4} i.e. \\boxed{4.0}", "4", "correct", None),  # one value written two ways
        ("<think>x</think>\\boxed{\\frac12} = \\boxed{0.5}", "1/2", "correct", None),  # equivalent in math-verify
        ("<think>x</think>\\boxed{}", "4", "unparsed", "empty_answer"),  # an empty box
        ("<think>x</think>\\boxed{  }", "4", "unparsed", "empty_answer"),  # a box of blanks
        ("<think>x</think>\\boxed{100000000000000000000000}", "100000000000000000000001", "wrong", None),  # off by 1
        ("<think>x</think>\\boxed{100000000000000000000001}", "100000000000000000000001", "correct", None),  # exact
        ("<think>x</think>\\boxed{100000000000000000000000.0}", "100000000000000000000001", "wrong", None),  # no floats
        ("<think>x</think>\\boxed{1,000,001}", "1000001", "correct", None),  # thousands separators
        ("<think>x</think>\\boxed{1{,}000{,}001}", "1000001", "correct", None),  # LaTeX thousands separators
        ("<think>x</think>\\boxed{\u22123}", "-3", "correct", None),  # unicode minus
        ("<think>x</think>\\boxed{\u22123}", "3", "wrong", None),  # unicode minus is still a minus
        ("<think>x</think>\\boxed{0.75}", "\\frac{3}{4}", "correct", None),  # \frac vs decimal
        ("<think>x</think>\\boxed{\\dfrac{3}{4}}", "3/4", "correct", None),  # LaTeX vs a plain fraction
        ("<think>x</think>\\boxed{0.7}", "\\frac{3}{4}", "wrong", None),  # close is not equal
        ("<think>x</think>\\boxed{2\\sqrt{2}}", "\\sqrt{8}", "correct", None),  # symbolic equivalence
        ("<think>x</think>\\boxed{\\$18}", "18", "correct", None),  # a currency sign is not part of the value
        ("<think>x</think>\\boxed{1200}", GSM8K_GOLD, "correct", None),  # GSM8K gold: after ####, commas gone
        ("<think>x</think>\\boxed{1,200}", GSM8K_GOLD, "correct", None),  # ... and the answer may keep its comma
        ("<think>x</think>\\boxed{1000}", GSM8K_GOLD, "wrong", None),  # a number inside the solution is not gold
        ("<think>x</think>\\boxed{\\frac{\\sqrt{3}}{2}}", MATH_GOLD, "correct", None),  # MATH gold: its last box
        ("<think>x</think>\\boxed{\\frac{1}{2}}", MATH_GOLD, "wrong", None),  # ... compared by value
        ("<think>x</think>\\boxed{50\\%}", "50", "wrong", "percent_mismatch"),  # percent strict by default
        ("<think>x</think>\\boxed{50\\%}", "0.5", "wrong", "percent_mismatch"),  # ... both readings refused
        ("<think>x</think>\\boxed{50\\%}", "50\\%", "correct", None),  # the same percentage is fine
        ("<think>x</think>\\boxed{IDK}", "4", "abstain", "abstained"),  # the abstain token (base rule)
        ("<think>x</think>I don't know.", "4", "abstain", "abstained"),  # an abstention phrase, no answer
        ("<think>x</think>\\boxed{" + TEN_THOUSAND_DIGITS + "}", "7", "wrong", None),  # 10,000 digits, exact & fast
        ("<think>x</think>\\boxed{" + TEN_THOUSAND_DIGITS + "}", TEN_THOUSAND_DIGITS, "correct", None),  # no int limit
        ("<think>x</think>\\boxed{" + TEN_THOUSAND_DIGITS + "}", "\\frac12", "unparsed", "too_long"),  # not for sympy
        ("<think>x</think>\\boxed{" + "{" * 500_000 + "}" * 500_000 + "}", "4", "unparsed", "too_long"),  # 1 MB braces
        ("<think>x</think>\\boxed{" + "{" * 1_000_000, "4", "unparsed", "too_long"),  # 1 MB section: unread
        ("<think>x</think>\\boxed{" + "{" * 90_000, "4", "unparsed", "no_answer"),  # 90 KB: read, never closed
        ("<think>x</think>\\boxed{\uff14\uff12}", "42", "correct", None),  # fullwidth digits fold to ASCII
        ("<think>x</think>\\boxed{\u0664\u0662}", "42", "correct", None),  # Arabic-Indic digits too
        ("<think>x</think>\\boxed{\u0664\u0663}", "42", "wrong", None),  # ... and keep their value (43)
        ("<think>x</think>\\boxed{\\frac{\uff11}{\uff12}}", "0.5", "correct", None),  # inside LaTeX as well
        ("<think>x</think>\\boxed{42}", "\uff14\uff12", "correct", None),  # a gold written in fullwidth
        ("<think>x</think>\\boxed{28 percent}", "28\\%", "correct", None),  # a percent word is the sign
        ("<think>x</think>\\boxed{28 pct}", "28\\%", "correct", None),  # ... abbreviated
        ("<think>x</think>\\boxed{50 \\text{ percent}}", "50\\%", "correct", None),  # ... in \text
        ("<think>x</think>\\boxed{28 Per Cent}", "28\\%", "correct", None),  # ... in two words, any case
        ("<think>x</think>\\boxed{28\uff05}", "28\\%", "correct", None),  # ... or a fullwidth sign
        ("<think>x</think>\\boxed{28 percent}", "28", "wrong", "percent_mismatch"),  # still strict by default
        ("<think>x</think>\\boxed{28 percent}", "29\\%", "wrong", None),  # and still compared by value
        ("<think>x</think>\\boxed{1,2}", "\\boxed{1}\\boxed{2}", "correct", None),  # a multi-part gold: a tuple
        ("<think>x</think>\\boxed{1, 2}", "Parts: $\\boxed{1}$ and $\\boxed{2}$.", "correct", None),  # in prose
        ("<think>x</think>\\boxed{2}", "\\boxed{1}\\boxed{2}", "wrong", None),  # the last part alone is wrong
        ("<think>x</think>\\boxed{1}\\boxed{2}", "\\boxed{1}\\boxed{2}", "wrong", "multiple_answers"),  # 1 box
        ("<think>x</think>\\boxed{3}", "\\boxed{3} = \\boxed{3.0}", "correct", None),  # one value twice: no tuple
        ("<think>x</think>\\boxed{\\textbf{IDK}}", "4", "abstain", "abstained"),  # formatting around IDK
        ("<think>x</think>\\boxed{\\text{\\textit{I don't know}}}", "4", "abstain", "abstained"),  # nested
        ("<think>x</think>IDK", "4", "abstain", "abstained"),  # the bare token as the whole answer
        ("<think>x</think>idk.", "4", "abstain", "abstained"),  # ... in any case, with a full stop
        ("<think>x</think>**IDK**", "4", "abstain", "abstained"),  # ... in Markdown bold
        ("<think>x</think>IDK, but \\boxed{4}", "4", "correct", None),  # a bare token beside an answer is text
    ],
)
def test_adversarial_table(math_verifier, completion, gold, outcome, reason):
    verdict = math_verifier.verify(completion, {"answer": gold})
    assert (verdict.outcome, verdict.reason) == (outcome, reason)


@pytest.mark.parametrize(
    "answer",
    [
        "9^{9^{9^{9}}}",  # an exponent tower: evaluating it would take forever
        "10^{10^{10^{10}}} - 10^{10^{10^{10}}} + 1",  # the same, where cancellation needs the value
        "\\sqrt{" * 300 + "2" + "}" * 300,  # deep nesting within the length limit
        "(x+1)^{2000} - (x-1)^{2000}",  # a large symbolic expansion
        "\\frac{" * 200 + "1" + "}{2}" * 200,  # a deep tower of fractions
    ],
)
def test_hostile_answers_end_unparsed_or_wrong_within_the_bound(math_verifier, answer):
    start = time.monotonic()
    verdict = math_verifier.verify(f"<think>x</think>\\boxed{{{answer}}}", {"answer": "4"})
    assert time.monotonic() - start < BOUND_S
    assert verdict.outcome in ("unparsed", "wrong")


def test_nested_unclosed_boxes_are_unparsed(math_verifier):
    assert math_verifier.verify("<think>x</think>" + "\\boxed{" * 1500, {"answer": "4"}).outcome == "unparsed"


def test_the_verifier_keeps_working_after_a_timeout(math_verifier):
    math_verifier.verify(TOWER, {"answer": "4"})
    assert math_verifier.verify("<think>x</think>\\boxed{\\frac{2}{4}}", {"answer": "0.5"}).outcome == "correct"


def test_a_worker_that_never_answers_is_killed_at_the_deadline_and_replaced():
    # A stopped process stands in for a worker stuck in C code, where its own timer cannot fire.
    with MathVerifier(timeout=TIMEOUT, workers=1).start() as verifier:
        (stuck,) = verifier.worker_pids()
        os.kill(stuck, signal.SIGSTOP)
        start = time.monotonic()
        verdict = verifier.verify(EASY, {"answer": "0.5"})
        assert time.monotonic() - start < BOUND_S
        assert (verdict.outcome, verdict.reason) == ("unparsed", "timeout")
        verifier.start()  # waiting for the replacement would count against a call's bound: wait here
        assert verifier.verify(EASY, {"answer": "0.5"}).outcome == "correct"
        assert stuck not in verifier.worker_pids()


def test_a_worker_that_dies_gives_unparsed_error_and_is_replaced():
    with MathVerifier(timeout=TIMEOUT, workers=1).start() as verifier:
        (dead,) = verifier.worker_pids()
        os.kill(dead, signal.SIGKILL)
        verdict = verifier.verify(EASY, {"answer": "0.5"})
        assert (verdict.outcome, verdict.reason) == ("unparsed", "error")
        verifier.start()
        assert verifier.verify(EASY, {"answer": "0.5"}).outcome == "correct"


def _timed_calls(verifier, completions: list[str], gold: str) -> list[tuple[object, float]]:
    """Each completion verified in its own thread, all released at once: (verdict, seconds) in order."""
    barrier = threading.Barrier(len(completions))

    def call(completion):
        barrier.wait()
        start = time.monotonic()
        return verifier.verify(completion, {"answer": gold}), time.monotonic() - start

    with ThreadPoolExecutor(max_workers=len(completions)) as pool:
        return list(pool.map(call, completions))


def test_the_bound_holds_per_call_when_more_threads_than_workers_call_in():
    # 12 threads, 2 workers: ten towers hold each worker for a whole timeout. Waiting for a busy
    # worker counts against the call's deadline, so every call returns on time; before, a call
    # queued behind five rounds of towers took 5 timeouts.
    with MathVerifier(timeout=TIMEOUT, workers=2).start() as verifier:
        results = _timed_calls(verifier, [TOWER] * 10 + [EASY] * 2, "0.5")
    assert all(seconds < BOUND_S for _, seconds in results), [round(s, 2) for _, s in results]
    assert all(verdict.outcome in ("unparsed", "wrong") for verdict, _ in results[:10])
    # An easy answer is judged if a worker came free in time, else it timed out: never wrong.
    assert all((v.outcome, v.reason) in (("correct", None), ("unparsed", "timeout")) for v, _ in results[10:])


def test_calls_waiting_on_stuck_workers_time_out_together_instead_of_queueing():
    # Both workers stopped: the two calls that hold them wait out their deadline and kill them;
    # the six that found no free worker time out at the same deadline, never waiting for a
    # replacement to start (before: they got the replacements and answered, late).
    with MathVerifier(timeout=TIMEOUT, workers=2).start() as verifier:
        for pid in verifier.worker_pids():
            os.kill(pid, signal.SIGSTOP)
        results = _timed_calls(verifier, [EASY] * 8, "0.5")
    assert all(seconds < BOUND_S for _, seconds in results), [round(s, 2) for _, s in results]
    assert {(verdict.outcome, verdict.reason) for verdict, _ in results} == {("unparsed", "timeout")}


def test_the_first_start_of_the_pool_is_not_counted_against_a_call():
    # No start(): the first call waits for the workers to import sympy (about a second, longer
    # than this timeout on a loaded machine) and still gets its whole bound for the comparison.
    with MathVerifier(timeout=0.3, workers=2) as verifier:
        assert verifier.verify(EASY, {"answer": "0.5"}).outcome == "correct"


def test_the_time_bound_holds_in_a_thread_that_is_not_main(math_verifier):
    # math-verify's own signal.alarm timeout cannot work here; the caller's deadline and the kill must.
    results = []

    def run():
        start = time.monotonic()
        verdict = math_verifier.verify(TOWER, {"answer": "4"})
        results.append((verdict, time.monotonic() - start))
        results.append((math_verifier.verify("<think>x</think>\\boxed{\\sqrt{4}}", {"answer": "2"}), 0.0))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    (tower, elapsed), (after, _) = results
    assert tower.outcome in ("unparsed", "wrong") and elapsed < BOUND_S
    assert after.outcome == "correct"


def test_hedged_correct_answer_is_correct_and_hedged(math_verifier):
    verdict = math_verifier.verify("<think>x</think>I think \\boxed{4}", {"answer": "4"})
    assert (verdict.outcome, verdict.hedged) == ("correct", True)


def test_details_carry_the_normalised_gold(math_verifier):
    verdict = math_verifier.verify("<think>x</think>\\boxed{1200}", {"answer": GSM8K_GOLD})
    assert verdict.details["gold"] == "1200"
    assert verdict.answer == "1200"


def test_lenient_percent_accepts_the_number_and_the_fraction():
    verifier = MathVerifier(lenient_percent=True)
    for gold in ("50", "0.5", "50\\%"):
        assert verifier.verify("<think>x</think>\\boxed{50\\%}", {"answer": gold}).outcome == "correct"
    assert verifier.verify("<think>x</think>\\boxed{50\\%}", {"answer": "5"}).outcome == "wrong"
    verifier.close()


@pytest.mark.parametrize(
    "pattern, answer, outcome, reason",
    [
        ("gsm8k", "so 40 + 2 = 42\n#### 42", "correct", None),  # GSM8K's own format
        ("gsm8k", "#### 1,042", "wrong", None),  # read as one thousand and forty-two
        ("gsm8k", "#### 41\n#### 42", "wrong", "multiple_answers"),  # two different final answers
        ("gsm8k", "The answer is 42.", "unparsed", "no_answer"),  # a declared format is the only one read
        ("gsm8k", "#### ", "unparsed", "empty_answer"),  # the marker with nothing after it
        ("answer_is", "The answer is 42.", "correct", None),  # a trailing full stop is not part of it
        ("answer_is", "The answer is $42$", "correct", None),  # inline math
        (r"ANSWER:\s*(\S+)", "ANSWER: 42", "correct", None),  # a task's own regex
        ("gsm8k", "#### 41 but really \\boxed{42}", "correct", None),  # a box wins over the declared format
    ],
)
def test_a_declared_answer_format_is_used_when_there_is_no_box(pattern, answer, outcome, reason):
    for verifier, example in ((MathVerifier(answer_pattern=pattern), {"answer": "42"}),
                              (MathVerifier(), {"answer": "42", "answer_pattern": pattern})):
        verdict = verifier.verify(f"<think>x</think>{answer}", example)
        assert (verdict.outcome, verdict.reason) == (outcome, reason)


def test_gold_is_read_from_plain_gsm8k_and_math_answers():
    assert gold_answer({"answer": 42}) == "42"
    assert gold_answer({"answer": " \\frac{1}{2} "}) == "\\frac{1}{2}"
    assert gold_answer({"answer": GSM8K_GOLD}) == "1200"
    assert gold_answer({"answer": "\\boxed{1}, so \\boxed{2}"}) == "1, 2"  # several boxes: the parts
    assert gold_parts({"answer": "\\boxed{1} = \\boxed{1.0} = \\boxed{1}"}) == ["1"]  # one value, one part
    # Two spellings of one value stay two parts here; the worker merges them (the table above).
    assert gold_parts({"answer": MATH_GOLD}) == ["\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}{2}"]


@pytest.mark.parametrize(
    "answer, message",
    [
        (None, "answer is None"),  # a missing gold would become the string "None"
        ([4], "answer is \\[4\\]"),  # a list would become "[4]", or its box
        (True, "answer is True"),  # a bool is not a number here
        (float("nan"), "answer is nan"),  # nor is NaN
        ("", "empty gold"),  # nothing to compare with
        ("\\boxed{}", "empty gold"),  # an empty box
    ],
)
def test_a_gold_that_is_not_a_str_or_number_is_refused_whatever_the_answer(math_verifier, answer, message):
    for completion in ("<think>x</think>\\boxed{None}", "<think>x</think>\\boxed{4}", "<think>x</think>", "IDK"):
        with pytest.raises(ValueError, match=message):
            math_verifier.verify(completion, {"answer": answer})


@pytest.mark.parametrize("gold", [
    "\\frac{",  # unbalanced: math-verify keeps the raw string and would compare strings
    "---",  # no value at all
    "\\$",  # a currency sign and nothing else
    "\\boxed{1} and \\boxed{---}",  # a MATH solution with one part that does not read
])
def test_a_gold_math_verify_reads_no_value_in_is_the_rows_error_whatever_the_answer(math_verifier, gold):
    # a copy of the gold once scored correct (string match) and everything else wrong: neither may happen
    for completion in (f"<think>x</think>\\boxed{{{gold}}}", "<think>x</think>\\boxed{4}", "<think>x</think>",
                       "<think>x</think>" + "1" * 5000):
        with pytest.raises(ValueError, match="gold_unreadable: math-verify reads no value in the gold"):
            math_verifier.verify(completion, {"answer": gold})


@pytest.mark.parametrize("gold, answer", [
    ("\\frac{14}{3}", "\\dfrac{14}{3}"),  # MATH-500's LaTeX golds read, and match other spellings
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\frac{\\pi}{2})"),
    ("\\text{Evelyn}", "\\text{Evelyn}"),  # a word is a value (a symbol), not an unreadable gold
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
])
def test_latex_golds_that_read_score_their_own_answers_correct(math_verifier, gold, answer):
    assert math_verifier.verify(f"<think>x</think>\\boxed{{{answer}}}", {"answer": gold}).outcome == "correct"


def test_a_row_without_gold_is_fine_when_marked_unanswerable(math_verifier):
    verdict = math_verifier.verify("<think>x</think>\\boxed{None}", {"answer": None, "answerable": False})
    assert (verdict.outcome, verdict.reason) == ("wrong", "unanswerable")


def test_bad_configuration_is_a_value_error_that_says_what_to_do():
    with pytest.raises(ValueError, match="no 'answer' field"):
        MathVerifier().judge("\\boxed{4}", {"solution": "4"})
    with pytest.raises(ValueError, match="empty gold"):
        MathVerifier().judge("\\boxed{4}", {"answer": "#### "})
    with pytest.raises(ValueError, match="exactly one"):
        compile_answer_pattern(r"(\d+)-(\d+)")
    with pytest.raises(ValueError, match="positive number of seconds"):
        MathVerifier(timeout=0)
    with pytest.raises(ValueError, match="max_section_chars=0 must be a positive int"):
        MathVerifier(max_section_chars=0)


@pytest.mark.parametrize("pattern", ["(", "(?P<x", "[0-9"])
def test_a_pattern_that_does_not_compile_is_a_value_error_naming_it(pattern):
    # Before: re.error escaped the API, from the constructor and from every call of a bad row.
    with pytest.raises(ValueError, match=f"answer_pattern {re.escape(repr(pattern))} is not a valid regex"):
        MathVerifier(answer_pattern=pattern)
    with pytest.raises(ValueError, match="is not a valid regex"):
        MathVerifier().verify("<think>x</think>#### 4", {"answer": "4", "answer_pattern": pattern})
    with pytest.raises(ValueError, match="is not a valid regex"):  # a bad row fails even when the answer is boxed
        MathVerifier().verify("<think>x</think>\\boxed{4}", {"answer": "4", "answer_pattern": pattern})


def test_plain_numbers_are_canonical_and_exact():
    assert plain_number("-0") == plain_number("0.000") == ("", "", "", False)
    assert plain_number("0012.3400") == ("", "12", "34", False)
    assert plain_number("1,2") is None  # a tuple, for math-verify
    assert plain_number("1e5") is None  # not plain: math-verify reads it


def test_verify_answer_takes_a_section_split_with_other_tags(math_verifier):
    # A protocol with its own tags splits first; the shared rules still apply to what it hands over.
    completion = "[reason]\\boxed{3}[/reason] so \\boxed{4}"
    section = completion.split("[/reason]", 1)[1]
    assert math_verifier.verify_answer(section, {"answer": "4"}).outcome == "correct"
    assert math_verifier.verify_answer(None, {"answer": "4"}).reason == "no_answer"  # thinking never closed
    assert math_verifier.verify_answer("\\boxed{IDK}", {"answer": "4"}).outcome == "abstain"


def test_batch_matches_one_by_one(math_verifier):
    completions = [
        "<think>x</think>\\boxed{4}",
        "<think>x</think>\\boxed{\\frac{8}{2}}",
        "<think>x</think>I think \\boxed{5}",
        "<think>\\boxed{4}",
        "<think>x</think>\\boxed{x^2}",
        "<think>x</think>\\boxed{IDK}",
    ] * 3
    examples = [{"answer": "4"}] * len(completions)
    one_by_one = [math_verifier.verify(c, e) for c, e in zip(completions, examples)]
    assert math_verifier.verify_batch(completions, examples) == one_by_one
    sections = [c.split("</think>", 1)[1] if "</think>" in c else None for c in completions]
    assert math_verifier.verify_answer_batch(sections, examples) == one_by_one
    with pytest.raises(ValueError, match="2 answer sections but 1 examples"):
        math_verifier.verify_answer_batch(sections[:2], examples[:1])


def test_the_registry_gives_a_math_verifier_that_survives_pickling():
    verifier = get_verifier("math", timeout=1.5)
    assert isinstance(verifier, MathVerifier) and verifier.timeout == 1.5
    copy = pickle.loads(pickle.dumps(verifier))
    assert copy.verify("<think>x</think>\\boxed{\\frac{3}{4}}", {"answer": "0.75"}).outcome == "correct"
    copy.close()


def test_importing_the_math_verifier_loads_neither_torch_nor_sympy():
    code = "import sys, rlcot.verifiers.math; print(sorted({'torch', 'sympy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- properties ----------------------------------------------------------------------------------

FRAGMENTS = ["\\boxed{", "{", "}", "<think>", "</think>", "####", "\\frac", "9^", "1", "0", ",", ".", "%", "\\%",
             "-", "\u2212", " ", "x", "I think", "IDK", "\\sqrt", "\\left(", "\\right)", "=", "\\text{", "$"]
texts = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=30).map("".join)


@settings(max_examples=50, deadline=None)
@given(completion=texts, gold=st.sampled_from(["4", "\\frac{1}{2}", GSM8K_GOLD, MATH_GOLD, "x^2+1"]))
def test_never_raises_is_deterministic_and_bounded(math_verifier, completion, gold):
    start = time.monotonic()
    first = math_verifier.verify(completion, {"answer": gold})
    assert time.monotonic() - start < BOUND_S
    assert first.outcome in OUTCOMES
    if first.reason != "timeout":  # a timeout may depend on the machine's load
        assert math_verifier.verify(completion, {"answer": gold}) == first


big_integers = st.integers(min_value=-(10**40), max_value=10**40)


@settings(max_examples=50, deadline=None)
@given(answer=big_integers, gold=big_integers, commas=st.booleans())
def test_integers_compare_exactly_at_any_size(math_verifier, answer, gold, commas):
    written = f"{answer:,}" if commas else str(answer)
    verdict = math_verifier.verify(f"<think>x</think>\\boxed{{{written}}}", {"answer": str(gold)})
    assert verdict.outcome == ("correct" if answer == gold else "wrong")
    assert math_verifier.verify(f"\\boxed{{{gold + 1}}}", {"answer": str(gold)}).outcome == "wrong"
