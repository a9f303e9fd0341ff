"""Math answers: strict extraction here, equivalence by math-verify in worker processes.

Extraction is ours and strict. The answer is the last ``\\boxed{...}`` of the answer
section (nested braces; ``sections.boxed_contents``). Without a box, a task may declare a
format: ``answer_pattern``, a regex with one group (or a preset name from
``ANSWER_PATTERNS``: ``"gsm8k"`` for ``#### 42``, ``"answer_is"`` for "The answer is
42"), given to the constructor or per example as ``example["answer_pattern"]``; a
pattern that does not compile is a ValueError naming it. There is no fallback to "the
last number in the text": no box and no declared format is ``unparsed``
(``no_answer``); an empty box is ``unparsed`` (``empty_answer``). Two final answers
that are not equivalent (``\\boxed{3} ... \\boxed{4}``) are ``wrong``
(``multiple_answers``) even if one of them matches the gold: a policy must not be paid
for spreading bets. The same value boxed twice is fine.

The gold is ``example["answer"]``, a str or a number (anything else, ``None`` or a
bool included, is a ValueError: a row with no answer says ``answerable: False``): a
plain value (``42``, ``3/4``, ``\\frac{1}{2}``), a GSM8K solution (what follows the last
``####``, commas stripped) or a MATH solution (its boxes). A solution that boxes
several values that are not equal (``\\boxed{1}`` and ``\\boxed{2}``) has a multi-part
answer: the gold is their tuple, ``1, 2``, so ``\\boxed{1, 2}`` is correct (a model
writes one box; two boxes in an answer stay ``multiple_answers``). Boxes with one
value spelled twice (``\\frac{\\sqrt{3}}{2}``, ``\\frac{\\sqrt3}{2}``) are one gold:
the worker compares the parts first. ``details["gold"]`` carries the normalised gold.

Normalisation, on answers and gold alike: Unicode decimal digits fold to ASCII
(fullwidth ``４２`` and Arabic-Indic ``٤٢`` are ``42``, as in sudoku and crossword),
Unicode minus, times and percent signs to their LaTeX, and percent words (``28
percent``, ``28 pct``, ``50 \\text{ percent}``, ``\\percent``) to ``\\%``.

Equivalence of LaTeX answers is math-verify's (Kydlíček et al., Hugging Face,
https://github.com/huggingface/Math-Verify): it parses LaTeX and plain expressions
into sympy and compares them as strings, numerically (floats rounded to 6 places)
and symbolically, with sets, intervals, relations and matrices handled. We do not
write our own LaTeX-to-sympy layer. Around it, our exactness rules:

- **Plain numbers compare exactly, in-process.** When the gold and every answer are
  plain numbers (``-1,234``, ``0.50``, ``\\$18``, ``25\\%``), they are compared by
  canonical decimal strings (sign, digits without leading zeros, fraction without
  trailing zeros): exact like Python ints and ``Decimal``, never via floats, and
  linear in the length. So ``100000000000000000000001 != 100000000000000000000000``,
  and a 10,000-digit answer is judged in microseconds: we never call ``int()`` on it,
  so Python's 4,300-digit int-parsing limit (CVE-2020-10735) never applies and is
  never raised. math-verify would round a float to 15 significant digits here.
  Commas are thousands separators only in groups of three (``1,234``); ``1,2`` is
  left to math-verify (a tuple).
- **Percent is strict unless asked.** A percent sign on one side only is ``wrong``:
  ``50\\%`` equals ``50\\%``, not ``50`` nor ``0.5``. math-verify itself accepts both
  (it reads ``9%`` as ``9`` when both are integers), and so does ``lenient_percent=True``
  (``x%`` matches ``x`` and ``x/100``). Where only the percent sign stood between an
  answer and the gold, the reason is ``percent_mismatch``: a user sees what the option
  would change. GSM8K's "what percent" questions have bare golds (``25``): turn it on.

**The time bound.** math-verify runs in a ``workers.WorkerPool`` (why processes, and
how a worker is stopped, in that module), each worker running ``make_comparer``. A
call's deadline is ``timeout`` (default 2 s) after judging starts (the shared rules
before it read at most ``max_section_chars``); in-process work and any wait for a busy
worker count against it, so with more threads than workers a call queued behind
exponent towers still returns on time (``unparsed``, ``timeout``). Only the pool's
first start (importing sympy, about a second) is not counted:
``start()`` pays it up front, otherwise the first calls that need a worker do. By
default the pool keeps two workers or more, so one killed worker leaves another
ready. ``verify_answer_batch`` (and so ``verify_batch``) runs ``verify_answer`` from
as many threads as workers, each taking the next item: same verdicts, in order. One
request per answer: a round trip costs ~0.1 ms against math-verify's 1-30 ms, so
chunks would buy little and complicate kills.

Hostile input is rejected before it reaches sympy: an answer over
``max_answer_chars`` (default 4,000) that is not a plain number is ``unparsed``
(``too_long``); at most 16 distinct boxes are compared (more is ``multiple_answers``).
An answer section over ``max_section_chars`` (default 100,000) is ``too_long`` unread:
reading boxes and hedges runs in the caller's process at up to ~1 s per MB of brace
soup, work no worker's bound covers, and no honest answer section is that long.
"""

from __future__ import annotations

import numbers
import os
import re
import threading
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping, Sequence

from .base import Verdict, Verifier, _check_lengths
from .hedging import DEFAULT_LEXICON, HedgeLexicon
from .sections import boxed_contents
from .workers import WorkerPool

ANSWER_PATTERNS = {
    "gsm8k": r"####\s*([^\n]*)",
    "answer_is": r"(?i)\banswer is\s*:?\s*(\$[^$\n]+\$|[^\s$]+)",
}
MAX_DISTINCT_ANSWERS = 16
COMPARER = "rlcot.verifiers.math:make_comparer"  # what each worker runs
_UNICODE_MATH = str.maketrans({"\u2212": "-", "\uff0d": "-", "\u00d7": "\\times ", "\u00f7": "\\div ",
                               "\u22c5": "\\cdot ", "\u00b7": "\\cdot ", "\uff05": "\\%", "\u066a": "\\%"})
_NON_ASCII_DIGIT = re.compile(r"(?![0-9])\d")  # \d on str is any Unicode decimal digit
_PERCENT_WORD = re.compile(
    r"\\(?:text|textrm|mathrm|mbox|textnormal|operatorname)\s*\{\s*(?:percent|per\s?cent|pct\.?)\s*\}"
    r"|\\percent(?![A-Za-z])"
    r"|(?<![A-Za-z\\])(?:percent|per\s?cent|pct\.?)(?![A-Za-z])",
    re.IGNORECASE,
)
_PLAIN_NUMBER = re.compile(
    r"(?P<sign>[+-]?)\s*(?:\\?\$)?\s*"
    r"(?P<int>\d{1,3}(?:,\d{3})+|\d*)(?:\.(?P<frac>\d+))?\s*(?P<percent>\\?%)?"
)
_LATEX_THOUSANDS = re.compile(r"(?<=\d)(?:\{,\}|\\,|\\!|\\ )(?=\d{3})")


class MathVerifier(Verifier):
    """Boxed (or pattern-declared) math answers against a gold; see the module docstring.

    ``timeout``: seconds per call, in any thread. ``answer_pattern``: regex with one
    group, or a name in ``ANSWER_PATTERNS``, used when the answer has no box.
    ``lenient_percent``: ``x%`` also matches ``x`` and ``x/100``. ``workers``: pool size
    (default: CPU count, between 2 and 4). ``max_answer_chars``: longer non-numeric
    answers are ``too_long``. ``max_section_chars``: longer answer sections are
    ``too_long``, unread. ``startup_timeout``: seconds a new worker may take to start.
    """

    name = "math"

    def __init__(self, timeout: float = 2.0, answer_pattern: str | None = None, lenient_percent: bool = False,
                 workers: int | None = None, max_answer_chars: int = 4000, max_section_chars: int = 100_000,
                 startup_timeout: float = 60.0, lexicon: HedgeLexicon = DEFAULT_LEXICON):
        super().__init__(lexicon)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
            raise ValueError(f"timeout={timeout!r} must be a positive number of seconds, e.g. 2.0")
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers={workers!r} must be a positive int, or None for the default")
        for option, value, example in (("max_answer_chars", max_answer_chars, 4000),
                                        ("max_section_chars", max_section_chars, 100_000)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{option}={value!r} must be a positive int, e.g. {example}")
        self.timeout = float(timeout)
        self.answer_pattern = compile_answer_pattern(answer_pattern) if answer_pattern is not None else None
        self.lenient_percent = lenient_percent
        self.workers = workers or min(4, max(2, os.cpu_count() or 1))
        self.max_answer_chars = max_answer_chars
        self.max_section_chars = max_section_chars
        self.startup_timeout = startup_timeout
        self._pool: WorkerPool | None = None
        self._pool_lock = threading.Lock()

    # -- the domain rule -------------------------------------------------------------

    def answer_section_limit(self, example: Mapping) -> int:
        return self.max_section_chars

    def check_example(self, example: Mapping) -> None:
        gold_parts(example)
        if example.get("answer_pattern") is not None:
            compile_answer_pattern(example["answer_pattern"])

    def judge(self, answer: str, example: Mapping) -> Verdict:
        started = time.monotonic()
        golds = gold_parts(example)
        gold = ", ".join(golds)
        details = {"gold": gold}
        answers = self.extract_answers(answer, example)
        if not answers:
            return Verdict("unparsed", reason="no_answer", details=details)
        answers = [a for a in answers if a]
        if not answers:
            return Verdict("unparsed", reason="empty_answer", details=details)
        distinct = _distinct(answers)
        final = distinct[-1]
        if len(distinct) > MAX_DISTINCT_ANSWERS:
            return Verdict("wrong", answer=final, reason="multiple_answers", details=details)
        veto = not self.lenient_percent and _has_percent(final) != _has_percent(gold)
        exact = self._compare_plain(golds, distinct)
        if exact is not None:
            return _verdict(*exact, veto, final, {**details, "engine": "exact"})
        if any(len(a) > self.max_answer_chars for a in distinct):
            return Verdict("unparsed", reason="too_long", details={**details, "chars": max(map(len, distinct))})
        return self._compare_in_worker(golds, distinct, veto, started, details)

    def extract_answers(self, answer: str, example: Mapping) -> list[str]:
        """Every final answer the section states, in order, normalised (empty strings kept)."""
        boxes = boxed_contents(answer)
        if not boxes:
            pattern = self.answer_pattern
            if example.get("answer_pattern") is not None:
                pattern = compile_answer_pattern(example["answer_pattern"])
            if pattern is None:
                return []
            boxes = [_clean_pattern_match(m.group(1)) for m in pattern.finditer(answer)]
        return [_normalise(b) for b in boxes]

    def _compare_plain(self, golds: list[str], answers: list[str]) -> tuple[bool, bool] | None:
        """(consistent, correct) when the gold is one plain number and so is every answer, else None.

        Percent is lenient here, like math-verify; ``_verdict`` vetoes a percent mismatch.
        """
        if len(golds) != 1:
            return None
        gold_number = plain_number(golds[0])
        answer_numbers = [plain_number(a) for a in answers]
        if gold_number is None or any(n is None for n in answer_numbers):
            return None
        final = answer_numbers[-1]
        consistent = all(numbers_equal(n, final, lenient_percent=True) for n in answer_numbers[:-1])
        return consistent, numbers_equal(final, gold_number, lenient_percent=True)

    def _compare_in_worker(self, golds: list[str], answers: list[str], veto: bool, started: float,
                           details: dict) -> Verdict:
        pool = self._get_pool()
        first_start = pool.wait_started()  # the pool's first start is not part of any call's bound
        reply = pool.call({"gold": golds, "answers": answers}, started + first_start + self.timeout)
        final = answers[-1]
        details = {**details, "engine": "math-verify"}
        if reply["status"] == "timeout":
            return Verdict("unparsed", answer=final, reason="timeout", details=details)
        if reply["status"] != "ok":
            return Verdict("unparsed", answer=final, reason="error", details={**details, "error": reply.get("error")})
        return _verdict(reply["consistent"], reply["correct"], veto, final, details)

    # -- throughput and lifecycle -------------------------------------------------------

    def verify_answer_batch(self, sections: Sequence[str | None], examples: Sequence[Mapping]) -> list[Verdict]:
        """``verify_answer`` on each pair, fanned out over the worker pool; results in order."""
        _check_lengths(sections, examples, "answer sections")
        results: list[Verdict | None] = [None] * len(sections)
        pending = iter(range(len(sections)))  # shared: each thread takes the next index (atomic in CPython)

        def drain() -> None:
            for i in pending:
                results[i] = self.verify_answer(sections[i], examples[i])

        threads = min(self.workers, len(sections))
        if threads <= 1:
            drain()
            return results
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="math-verify") as pool:
            for future in [pool.submit(drain) for _ in range(threads)]:
                future.result()  # re-raises a ValueError (a bad example) from any thread
        return results

    def start(self) -> MathVerifier:
        """Start every worker now and wait until they are ready (otherwise the first call does)."""
        self._get_pool().wait_ready()
        return self

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for monitoring; empty before the first need)."""
        pool = self._pool
        return [] if pool is None else pool.pids()

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def __enter__(self) -> MathVerifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self):  # a copy (pickled into another process) makes its own pool
        state = dict(self.__dict__)
        state["_pool"], state["_pool_lock"] = None, None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._pool_lock = threading.Lock()

    def _get_pool(self) -> WorkerPool:
        with self._pool_lock:
            # After a fork the inherited pool's pipes belong to the parent: leave them alone.
            if self._pool is None or self._pool.owner_pid != os.getpid():
                self._pool = WorkerPool(COMPARER, self.workers, self.startup_timeout)
            return self._pool


# -- gold, extraction and plain numbers (pure functions) -----------------------------------


def gold_parts(example: Mapping) -> list[str]:
    """The normalised gold of an example, as its parts: one, or several for a multi-part answer.

    A plain value, GSM8K's ``#### x``, or a MATH solution's boxes, distinct ones in
    order (plain numbers compared by value here; other spellings of one value are
    merged by the worker). ValueError for a missing, non-str/number or empty gold.
    """
    if "answer" not in example:
        raise ValueError(f"math example has no 'answer' field (keys: {sorted(example)}); put the gold answer there")
    text = _gold_text(example["answer"])
    if "####" in text:
        parts = [text.rsplit("####", 1)[1].replace(",", "")]
    else:
        parts = boxed_contents(text) or [text]
    parts = _distinct_values([_normalise(p) for p in parts])
    if not all(parts):
        raise ValueError(f"math example's answer {text[:80]!r} gives an empty gold; fix the data")
    return parts


def gold_answer(example: Mapping) -> str:
    """The normalised gold as one string (parts joined by ", "), as ``details["gold"]`` shows it."""
    return ", ".join(gold_parts(example))


def _gold_text(value) -> str:
    """``example["answer"]`` as text: a str, or a finite number other than a bool."""
    if isinstance(value, str):
        return value
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if is_number and value == value and abs(value) != float("inf"):  # NaN and infinities are no gold
        return str(value)
    raise ValueError(f"math example's answer is {value!r} ({type(value).__name__}); give the gold as a str or a "
                     f"number, or set answerable: False for a row with no answer")


def _distinct_values(parts: list[str]) -> list[str]:
    """Parts in order of first appearance without repeats; plain numbers repeat when equal in value."""
    kept, seen = [], set()
    for part in parts:
        number = plain_number(part)
        key = part if number is None else number
        if key not in seen:
            seen.add(key)
            kept.append(part)
    return kept


def compile_answer_pattern(pattern: str) -> re.Pattern:
    """A task's answer format: a name in ``ANSWER_PATTERNS`` or a regex with exactly one group."""
    if not isinstance(pattern, str):
        raise TypeError(f"answer_pattern must be a str (a regex or one of {sorted(ANSWER_PATTERNS)})")
    try:
        compiled = re.compile(ANSWER_PATTERNS.get(pattern, pattern))
    except re.error as err:
        raise ValueError(f"answer_pattern {pattern!r} is not a valid regex ({err}); fix it, e.g. r'####\\s*(.+)', "
                         f"or use one of {sorted(ANSWER_PATTERNS)}") from None
    if compiled.groups != 1:
        raise ValueError(f"answer_pattern {pattern!r} has {compiled.groups} groups; give exactly one, "
                         f"capturing the answer, e.g. r'####\\s*(.+)', or one of {sorted(ANSWER_PATTERNS)}")
    return compiled


def plain_number(text: str) -> tuple[str, str, str, bool] | None:
    """``(sign, integer digits, fraction digits, percent)`` of a plain number, canonical; else None.

    Canonical: no leading zeros in the integer part ("" for zero), no trailing zeros in
    the fraction, no sign on zero. Two plain numbers are equal exactly when these are.
    """
    text = _LATEX_THOUSANDS.sub(",", text.strip())
    match = _PLAIN_NUMBER.fullmatch(text)
    if match is None or not (match["int"] or match["frac"]):
        return None
    integer = match["int"].replace(",", "").lstrip("0")
    fraction = (match["frac"] or "").rstrip("0")
    sign = "-" if match["sign"] == "-" and (integer or fraction) else ""
    return sign, integer, fraction, bool(match["percent"])


def numbers_equal(a: tuple[str, str, str, bool], b: tuple[str, str, str, bool], lenient_percent: bool = False) -> bool:
    """Exact equality of two ``plain_number`` results; with ``lenient_percent``, x% also equals x and x/100."""
    if a[3] == b[3]:
        return a[:3] == b[:3]
    if not lenient_percent:
        return False
    percent, other = (a, b) if a[3] else (b, a)
    return percent[:3] == other[:3] or _shift_point(percent[:3], -2) == other[:3]


def _shift_point(number: tuple[str, str, str], places: int) -> tuple[str, str, str]:
    """The canonical number times 10**places (string arithmetic: exact at any length)."""
    sign, integer, fraction = number
    digits, point = integer + fraction, len(integer) + places
    if point < 0:
        digits, point = "0" * -point + digits, 0
    digits = digits.ljust(point, "0")
    integer, fraction = digits[:point].lstrip("0"), digits[point:].rstrip("0")
    return (sign if integer or fraction else ""), integer, fraction


def _normalise(text: str) -> str:
    """Unicode digits and signs to ASCII/LaTeX, percent words to ``\\%``, runs of white space to one."""
    if not text.isascii():
        text = _NON_ASCII_DIGIT.sub(lambda m: str(unicodedata.decimal(m.group())), text.translate(_UNICODE_MATH))
    return " ".join(_PERCENT_WORD.sub(lambda m: "\\%", text).split())


def _clean_pattern_match(text: str) -> str:
    text = text.strip().rstrip(".").strip()
    if len(text) >= 2 and text[0] == text[-1] == "$":
        text = text[1:-1]
    return text


def _distinct(answers: list[str]) -> list[str]:
    """Distinct answers in order of last appearance: the final answer stays last."""
    seen: dict[str, None] = {}
    for a in reversed(answers):
        seen.setdefault(a, None)
    return list(reversed(seen))


def _has_percent(text: str) -> bool:
    return "%" in text  # percent words and signs are "\\%" after _normalise


def _verdict(consistent: bool, correct: bool, percent_veto: bool, final: str, details: dict) -> Verdict:
    """The outcome of a comparison. ``percent_veto``: the match went through a percent sign on one side only."""
    if not consistent:
        return Verdict("wrong", answer=final, reason="multiple_answers", details=details)
    if correct and percent_veto:
        return Verdict("wrong", answer=final, reason="percent_mismatch", details=details)
    return Verdict("correct" if correct else "wrong", answer=final, details=details)


# -- what each worker runs (``workers.serve`` calls it once, then answers with the result) ---------


def make_comparer():
    """math-verify's comparison, its own (signal) timeouts off: the worker's timer and the caller's kill bound it."""
    from functools import lru_cache

    import math_verify
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    math_verify.parser.TIMEOUT_WARNING_SHOWN = math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    configs = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]

    def parse_answer(text: str):
        return parse("\\boxed{" + text + "}", extraction_config=configs, parsing_timeout=None)

    def equal(a, b) -> bool:
        return verify(a, b, timeout_seconds=None)

    @lru_cache(maxsize=4096)
    def parse_gold(parts: tuple[str, ...]):
        """One part; or several, spellings of one value merged, read as the tuple of the rest."""
        kept = []
        for text in parts:
            parsed = parse_answer(text)
            if not any(equal(other, parsed) for _, other in kept):
                kept.append((text, parsed))
        return kept[0][1] if len(kept) == 1 else parse_answer(", ".join(text for text, _ in kept))

    def compare(gold: list[str], answers: list[str]) -> dict:
        parsed = [parse_answer(a) for a in answers]
        final = parsed[-1]
        consistent = all(equal(final, p) for p in parsed[:-1])
        correct = equal(parse_gold(tuple(gold)), final)
        return {"status": "ok", "consistent": bool(consistent), "correct": bool(correct)}

    compare(["1"], ["\\frac{1}{2}", "x^2"])  # warm the LaTeX parser and sympy's caches before "ready"
    return compare
