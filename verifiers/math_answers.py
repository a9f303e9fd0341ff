"""Math answers and golds: extraction, normalisation and plain numbers (pure functions).

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
bool included, is a ValueError starting ``gold_unreadable:``, as an empty gold is: a
row with no answer says ``answerable: False``; ``math.py`` refuses a gold math-verify
reads no value in the same way): a
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

Plain numbers (``plain_number``) are read exactly, as canonical decimal strings; the rule
``rlcot.verifiers.math`` applies with them:

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
"""

from __future__ import annotations

import numbers
import re
import unicodedata
from typing import Mapping

from .sections import boxed_contents

ANSWER_PATTERNS = {
    "gsm8k": r"####\s*([^\n]*)",
    "answer_is": r"(?i)\banswer is\s*:?\s*(\$[^$\n]+\$|[^\s$]+)",
}
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
        raise ValueError(f"gold_unreadable: math example's answer {text[:80]!r} gives an empty gold; fix the data")
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
    raise ValueError(f"gold_unreadable: math example's answer is {value!r} ({type(value).__name__}); give the "
                     "gold as a str or a number, or set answerable: False for a row with no answer")


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
