"""Mini crosswords: the grid representation and numbering, and a checker for filled grids.

The generator, which fills grids from WordNet, lives in ``rlcot.verifiers.crossword_generator``;
this module is all the verifier needs.

Representation. A puzzle is three JSON-friendly fields. ``grid``: the empty grid as a
list of row strings, ``#`` a black square, ``.`` a white one. ``solution``: the same
rows with every white square's letter (``A``-``Z``). ``clues``:
``{"across": {"1": "Feline mammal", ...}, "down": {...}}``. Rows may also be given as
one newline-separated string; letters are read case-insensitively.

Numbering is the standard one: scanning rows top to bottom, left to right, a white
square gets the next number when it starts an across run (no white square to its
left, one to its right) or a down run (none above, one below) of length >= 2. An
entry is named by number and direction, ``1A``, ``2D``; ``number_grid`` computes
them, and the generator and the checker share it.

What counts as correct. The whole grid must equal ``solution``: same size, same black
squares, every white square filled with its letter. Another fill made of real words
is wrong: the clues pin the words. Reasons, the first failing one reported:
``wrong_size`` (rows or columns differ), ``black_squares_changed`` (a letter on a
black square or a ``#`` on a white one), ``multiple_answers`` (an entry given two
different words, or entries that disagree with a grid written beside them),
``wrong_length`` (an entry's word does not fit its slot), ``conflicting_entries`` (an
across and a down entry put different letters in the square they share),
``incomplete`` (white squares left blank), ``wrong_letters``. All are ``wrong``: the
model committed to an answer. ``details`` always carries per-entry and per-square
accuracy (``entries_correct``/``entries``, ``cells_correct``/``cells``, ``per_entry``
``{"1A": True, ...}``), a diagnostic. ``partial_credit=True`` adds
``details["partial_credit"]``, the fraction of white squares right, for a user who
wants a graded score (``reward = verdict.details["partial_credit"]``); the outcome
stays correct or wrong, so the hedge scheme never sees partial credit (a departure
from reasoning-gym, whose scorers pay fractions and score floors by default).

Reading the answer. Two forms, case-insensitive, in the answer section, or only inside
the last ``\\boxed{}`` when that box holds one (LaTeX ``\\\\`` rows and ``&`` cells are
read). *Entries*: ``1A: WORD``, ``1 Across: WORD``, ``2D - WORD``, ``1-down = word``,
several on a line when separated by ``,`` or ``;``, or under ``Across``/``Down``
headings as ``1. WORD``; a segment must be a label and one word only, so an echoed
clue ("1A: Feline mammal") is not read as an answer. *Grid*: one row per line,
letters and ``#`` (``.``, ``_`` or ``?`` for a blank), spaces or ``|`` between squares
allowed, in a code block or not. A line with any other character is text and ends a
grid; lines of ``-``/``+``/``=`` dividers are skipped; a line mixing upper- and
lower-case letters ("Grid") is text. A run of >= 2 rows with a letter is a grid; an
echo of the empty puzzle (no letters) is ignored. Two different grids are ``wrong``
(``multiple_answers``), as in ``rlcot.verifiers.sudoku``: listing candidates never wins.
Text is NFKC-folded first, so fullwidth ``ＣＡＴ`` is ``CAT``; accented letters stay
themselves and never match ``A``-``Z`` (``É`` is not ``E``): ``wrong_letters``. An
answer section over ``CHARS_PER_SQUARE`` characters per square of the grid (at least
``MIN_ANSWER_LIMIT``) is ``unparsed`` (``too_long``) unread: parsing costs about a
second per MB, outside any time bound, and no honest answer to a mini is that long.

Examples are checked on every call (``check_example``): a missing solution, rows of
different lengths, a solution with no white square (``["", ""]``), characters other
than ``A``-``Z`` and ``#``, or a ``grid`` whose black squares disagree with it is a
ValueError naming the value and the fix.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .base import Verdict, Verifier
from .hedging import DEFAULT_LEXICON, HedgeLexicon
from .sections import last_boxed

BLACK, BLANK = "#", "."
DIRECTIONS = {"A": "across", "D": "down"}
# Answer sections longer than this many characters per square (at least MIN_ANSWER_LIMIT) are
# `too_long`, unread: a 5x5 written as entries is ~150 characters, and reading costs ~1.5 s per MB.
CHARS_PER_SQUARE = 200
MIN_ANSWER_LIMIT = 4000


# ---------------------------------------------------------------------- grids and numbering


@dataclass(frozen=True)
class Entry:
    number: int
    direction: str  # "A" or "D"
    cells: tuple[tuple[int, int], ...]

    @property
    def key(self) -> str:
        return f"{self.number}{self.direction}"


def number_grid(grid: Sequence[str]) -> list[Entry]:
    """The entries of a grid (``#`` black, anything else white) in standard numbering order."""
    rows, cols = len(grid), len(grid[0]) if grid else 0

    def white(r: int, c: int) -> bool:
        return 0 <= r < rows and 0 <= c < cols and grid[r][c] != BLACK

    entries, number = [], 0
    for r in range(rows):
        for c in range(cols):
            if not white(r, c):
                continue
            starts = [d for d, (dr, dc) in (("A", (0, 1)), ("D", (1, 0)))
                      if not white(r - dr, c - dc) and white(r + dr, c + dc)]
            if starts:
                number += 1
            for direction in starts:
                dr, dc = (0, 1) if direction == "A" else (1, 0)
                cells, rr, cc = [], r, c
                while white(rr, cc):
                    cells.append((rr, cc))
                    rr, cc = rr + dr, cc + dc
                entries.append(Entry(number, direction, tuple(cells)))
    return entries


def _rows(value, field: str) -> list[str]:
    """An example's grid field as upper-case row strings; ValueError when it is not a rectangle."""
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(row, str) for row in value):
        raise ValueError(f"crossword {field} must be a non-empty list of row strings, got {value!r}")
    rows = [row.strip().upper() for row in value]
    if len({len(row) for row in rows}) != 1:
        raise ValueError(f"crossword {field} rows have different lengths {[len(r) for r in rows]}; make it a rectangle")
    if not rows[0] or all(ch == BLACK for row in rows for ch in row):
        raise ValueError(f"crossword {field} {value!r} has no white square; give the rows, '#' for black squares")
    return rows


def _solution(example: Mapping) -> list[str]:
    if "solution" not in example:
        raise ValueError("crossword example has no 'solution' field; give the filled grid as row strings")
    solution = _rows(example["solution"], "solution")
    bad = sorted({ch for row in solution for ch in row if ch != BLACK and not "A" <= ch <= "Z"})
    if bad:
        raise ValueError(f"crossword solution has characters {''.join(bad)!r}; use letters A-Z and '#'")
    if example.get("grid") is not None:
        grid = _rows(example["grid"], "grid")
        if [[ch == BLACK for ch in row] for row in grid] != [[ch == BLACK for ch in row] for row in solution]:
            raise ValueError("crossword grid and solution disagree on the black squares; fix the example")
    return solution


# ---------------------------------------------------------------------- reading the answer

_LATEX = re.compile(r"\\\\|\\(?:begin|end)\{[^}]*\}(?:\{[^}]*\})?|\\hline|&|\\[,;:!]|\\quad|~")
_LATEX_TEXT = re.compile(r"\\(?:text|mathrm|mathtt|textbf|mathbf)\{([^{}]*)\}")
_ROW_SEPARATORS = re.compile(r"[|\u2500-\u257f]")
_DIVIDER = re.compile(r"[-+=:\s|\u2500-\u257f]+")
_BLANK_MARKS = "._?"
_LABEL = r"(\d{1,2})\s*-?\s*(a|d|across|down)(?![^\W\d_])"
_WORD = r"([^\W\d_]+)"
_TAIL = r"\s*(?:\([^()]*\))?\s*[.!]?\s*"
_ENTRY = re.compile(rf"{_LABEL}\s*[:=.)\-\u2013\u2014]*\s*{_WORD}{_TAIL}", re.IGNORECASE)
_ENTRY_REVERSED = re.compile(rf"(across|down)\s*(\d{{1,2}})\s*[:=.)\-\u2013\u2014]*\s*{_WORD}{_TAIL}", re.IGNORECASE)
_NUMBERED = re.compile(rf"(\d{{1,2}})\s*[:=.)\-\u2013\u2014]\s*{_WORD}{_TAIL}")
_HEADING = re.compile(r"(across|down)\s*:?", re.IGNORECASE)


def _latex_piece(match: re.Match) -> str:
    piece = match.group()
    return "\n" if piece in ("\\\\", "\\hline") or piece.startswith(("\\begin", "\\end")) else " "


def _latex_to_text(text: str) -> str:
    """LaTeX rows (``\\\\``, ``array``) as lines and cells (``&``) as spaces; ``\\text{X}`` as X."""
    return _LATEX.sub(_latex_piece, _LATEX_TEXT.sub(r"\1", text).replace("\\#", "#"))


def _upper(ch: str) -> str:
    upper = ch.upper()
    return upper if len(upper) == 1 else ch  # "ß".upper() is "SS": keep one square one character


def _row_cells(line: str) -> list[str] | None:
    """The squares of a grid row; [] for a divider line; None for a line of text."""
    stripped = _ROW_SEPARATORS.sub(" ", line).strip()
    if not stripped or _DIVIDER.fullmatch(line.strip()):
        return []
    tokens = stripped.split()
    if len(tokens) > 1 and any(len(token) != 1 for token in tokens):
        return None  # words separated by spaces: prose, not squares
    squares = "".join(tokens)
    if len(squares) < 2 or not all(ch.isalpha() or ch == BLACK or ch in _BLANK_MARKS for ch in squares):
        return None
    letters = "".join(ch for ch in squares if ch.isalpha())
    if letters != letters.upper() and letters != letters.lower():
        return None  # "Grid", "Here": a word, not a row
    return [BLANK if ch in _BLANK_MARKS else _upper(ch) for ch in squares]


def read_grids(text: str) -> list[list[list[str]]]:
    """Every run of >= 2 grid rows holding a letter, in order."""
    runs, current = [], []
    for line in text.splitlines() + [""]:
        cells = _row_cells(line)
        if cells:
            current.append(cells)
            continue
        if cells is None or not line.strip():
            if len(current) >= 2 and any(ch.isalpha() for row in current for ch in row):
                runs.append(current)
            current = []
    return runs


def read_entries(text: str) -> list[tuple[str, str]]:
    """(``"1A"``, ``"WORD"``) pairs in order of appearance (rules in the module doc)."""
    found, heading = [], None
    for line in text.splitlines():
        line = line.replace("*", "").strip()
        if _HEADING.fullmatch(line):
            heading = line[0].upper()
            continue
        for segment in re.split(r"[,;]", line):
            segment = " ".join(segment.split())  # one space at most: keeps the regexes linear
            if not segment:
                continue
            if match := _ENTRY.fullmatch(segment):
                number, direction, word = match.groups()
            elif match := _ENTRY_REVERSED.fullmatch(segment):
                direction, number, word = match.groups()
            elif heading and (match := _NUMBERED.fullmatch(segment)):
                (number, word), direction = match.groups(), heading
            else:
                continue
            found.append((f"{int(number)}{direction[0].upper()}", "".join(_upper(ch) for ch in word)))
    return found


@dataclass(frozen=True)
class Reading:
    """What an answer section says: a grid, entries, or both."""

    grid: list[list[str]] | None  # the last grid written
    entries: list[tuple[str, str]]
    distinct_grids: int = 0  # more than one: the answer lists candidates


def read_answer(text: str) -> Reading | None:
    """The answer in the last ``\\boxed{}`` if it holds one, else in the whole text; None if none."""
    text = unicodedata.normalize("NFKC", text)
    boxed = last_boxed(text)
    for source in ([boxed] if boxed is not None else []) + [text]:
        source = _latex_to_text(source)
        grids, entries = read_grids(source), read_entries(source)
        if grids or entries:
            distinct = len({tuple(map(tuple, grid)) for grid in grids})
            return Reading(grids[-1] if grids else None, entries, distinct)
    return None


# ---------------------------------------------------------------------- judging


def _fill_from_entries(entries: list[tuple[str, str]], solution: list[str], slots: dict[str, Entry]):
    """The grid the entries spell ('!' on a square two entries disagree on), and the first problem."""
    grid = [[BLACK if ch == BLACK else BLANK for ch in row] for row in solution]
    stated: dict[str, str] = {}
    problem = None
    for key, word in entries:
        if key in stated and stated[key] != word:
            problem = problem or "multiple_answers"
        stated.setdefault(key, word)
    for key, word in stated.items():
        slot = slots.get(key)
        if slot is None:
            continue  # "9A" in a puzzle without 9A: says nothing about the grid (listed in details)
        if len(word) != len(slot.cells):
            problem = problem or "wrong_length"
            continue
        for (r, c), letter in zip(slot.cells, word):
            if grid[r][c] not in (BLANK, letter):
                grid[r][c] = "!"
                problem = problem or "conflicting_entries"
            elif grid[r][c] == BLANK:
                grid[r][c] = letter
    return grid, stated, problem


def _grid_problem(grid: list[list[str]], solution: list[str]) -> str | None:
    if len(grid) != len(solution) or any(len(row) != len(solution[0]) for row in grid):
        return "wrong_size"
    squares = [(got, want) for row, gold in zip(grid, solution) for got, want in zip(row, gold)]
    if any((got == BLACK) != (want == BLACK) for got, want in squares):
        return "black_squares_changed"
    if any(got == BLANK for got, want in squares):
        return "incomplete"
    if any(got != want for got, want in squares):
        return "wrong_letters"
    return None


def _accuracy(grid, solution: list[str], slots: dict[str, Entry], wrong_keys=()) -> dict:
    same_size = len(grid) == len(solution) and all(len(row) == len(solution[0]) for row in grid)

    def right(r: int, c: int) -> bool:
        return same_size and grid[r][c] == solution[r][c]

    white = [(r, c) for r, row in enumerate(solution) for c, ch in enumerate(row) if ch != BLACK]
    per_entry = {key: key not in wrong_keys and all(right(r, c) for r, c in slot.cells) for key, slot in slots.items()}
    return {
        "entries_correct": sum(per_entry.values()),
        "entries": len(per_entry),
        "cells_correct": sum(right(r, c) for r, c in white),
        "cells": len(white),
        "per_entry": per_entry,
    }


class CrosswordVerifier(Verifier):
    """Judges a crossword answer (a grid or ``1A: WORD`` entries) against the solution (module doc).

    Example fields: ``solution`` (required), ``grid`` (optional; checked against the
    solution's black squares). ``partial_credit=True`` adds ``details["partial_credit"]``.
    """

    name = "crossword"

    def __init__(self, partial_credit: bool = False, lexicon: HedgeLexicon = DEFAULT_LEXICON):
        super().__init__(lexicon)
        self.partial_credit = partial_credit

    def check_example(self, example: Mapping) -> None:
        _solution(example)

    def answer_section_limit(self, example: Mapping) -> int:
        squares = sum(len(row) for row in _solution(example))
        return max(MIN_ANSWER_LIMIT, CHARS_PER_SQUARE * squares)

    def judge(self, answer: str, example: Mapping) -> Verdict:
        solution = _solution(example)
        slots = {entry.key: entry for entry in number_grid(solution)}
        reading = read_answer(answer)
        if reading is None:
            return Verdict("unparsed", reason="no_answer")
        details: dict = {"format": "grid" if reading.grid is not None else "entries"}
        problem, wrong_keys = None, set()
        if reading.entries:
            filled, stated, problem = _fill_from_entries(reading.entries, solution, slots)
            wrong_keys = {key for key, word in stated.items() if key in slots and len(word) != len(slots[key].cells)}
            if set(stated) - set(slots):
                details["unknown_entries"] = sorted(set(stated) - set(slots))
        if reading.grid is None:
            grid = filled
        else:  # a grid, judged as written; entries beside it must agree with it
            grid, wrong_keys = reading.grid, set()
            if reading.entries and (problem or _disagree(filled, grid)):
                problem = "multiple_answers"
            if reading.distinct_grids > 1:  # two different grids: listing candidates never wins
                problem = "multiple_answers"
        problem = _first_problem(problem, _grid_problem(grid, solution))
        details.update(_accuracy(grid, solution, slots, wrong_keys))
        if self.partial_credit:
            details["partial_credit"] = details["cells_correct"] / details["cells"] if details["cells"] else 0.0
        text = "\n".join("".join(row) for row in grid)
        return Verdict("wrong" if problem else "correct", answer=text, reason=problem, details=details)


_ORDER = ("wrong_size", "black_squares_changed", "multiple_answers", "wrong_length", "conflicting_entries",
          "incomplete", "wrong_letters")


def _first_problem(*problems: str | None) -> str | None:
    found = [p for p in problems if p]
    return min(found, key=_ORDER.index) if found else None


def _disagree(filled: list[list[str]], grid: list[list[str]]) -> bool:
    """Entries and a grid in one answer that put different letters in a square."""
    for r, row in enumerate(filled):
        for c, ch in enumerate(row):
            if ch not in (BLACK, BLANK) and (r >= len(grid) or c >= len(grid[r]) or grid[r][c] != ch):
                return True
    return False


def format_answer(example: Mapping, style: str = "entries") -> str:
    """The gold answer as a model should write it: ``1A: WORD`` lines, or the grid's rows."""
    solution = _solution(example)
    if style == "grid":
        return "\n".join(solution)
    if style != "entries":
        raise ValueError(f"style={style!r}; choose 'entries' or 'grid'")
    entries = sorted(number_grid(solution), key=lambda e: (e.direction, e.number))
    return "\n".join(f"{e.key}: {''.join(solution[r][c] for r, c in e.cells)}" for e in entries)
