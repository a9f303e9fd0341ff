"""Sudoku: the grid representation, and a rule checker for filled grids.

The solvers, the technique grader and the puzzle generator live in
``rlcot.verifiers.sudoku_generator``; this module is all the verifier needs.

Representation. A grid is a row-major string of ``N*N`` characters, a digit
``1..N`` or ``.`` for a blank; the side is read off the length: 16 cells is 4x4
(2x2 boxes), 36 is 6x6 (boxes of 2 rows by 3 columns), 81 is 9x9 (3x3 boxes).
Checker, solvers and generator share it, and a row of a dataset is plain JSON.
Example puzzles may also write blanks as ``0`` and carry whitespace; any other
length or character is a ``ValueError`` naming the bad value, and so is a puzzle whose
givens repeat a digit in a unit (nothing solves it) or a stored ``solution`` that does
not solve its puzzle. Examples are checked on every call (``check_example``), so a
broken row fails at once, whatever the model wrote.

What counts as correct. The answer section's grid is judged by the rules, not by
equality with the stored solution: it is complete, every row, column and box is a
permutation of ``1..N``, and every given of the puzzle is kept. A puzzle with two
solutions therefore accepts both, and a user's puzzle file needs no solution column
at all. A stored ``solution`` only feeds ``details`` (``cells_correct``), a
diagnostic, never credit. Reasons, checked in this order (the first failing one is
reported): ``wrong_size``, ``invalid_digit`` (a digit above ``N``), ``givens_changed``
(a given overwritten with another digit), ``incomplete`` (blanks left, a blanked
given included), ``row_conflict``, ``column_conflict``, ``box_conflict``.
``wrong_size`` is ``wrong``, not ``unparsed``: the model committed to a grid, and
an "unparsed" label would let a scheme with a soft unparsed penalty pay it more
than for a wrong grid of the right size.

Reading the answer (``extract_grids``). Models write grids many ways: digits with
spaces, ``|`` and ``-``/``+`` separators, one row per line, Markdown tables,
``[[..], ..]`` lists, a LaTeX ``array`` in ``\\boxed{}``, a fenced code block, or
one line of 81 digits. The text is cut into lines; a line made only of cells (any
Unicode decimal digit, after NFKC folding, so fullwidth ``１`` is ``1``: the grid is
judged, not the script; ``.``, ``?`` or ``0`` for a blank) and separators is a row;
a line with no cells (``---+---``, ``\\boxed{``, a blank line) is neutral; any other
line is text and ends a run of rows. Row labels are not cells: ``Row 1:``, ``R1:``,
``1)``, a letter (``A |``, ``a)``), and ``1.``, ``2.``, ... when every row of the run
carries its own number (a lone ``3.`` may be a 3 and a blank). In a Markdown table
the row above the ``|---|---|`` rule is a header: column names (``| 1 | 2 | ...``),
unless without it the body is one row short of a whole grid (the grid's first row
put in the header, as a table needs one); a header with an empty corner cell marks
the first column as row labels. Each run is read as one stream of cells, so
line breaks do not matter. Each run with at least ``N`` cells is a grid: ``N*N``
cells is one, ``k*N*N`` cells (grids written back to back) is ``k``, anything else
a grid of the wrong size. A grid equal to the puzzle is a restatement, not an
answer (a model that echoes the puzzle, then solves it, is judged on the solution).
Two different answer grids are ``wrong`` (``multiple_answers``), as two different
boxes are in math: a policy must not win by listing candidates. A run of fewer
than ``N`` cells ("\\boxed{5}") is not a grid, and no grid at all is ``unparsed``
(``no_answer``). An answer section over ``CHARS_PER_CELL`` characters per cell (at
least ``MIN_ANSWER_LIMIT``) is ``unparsed`` (``too_long``) unread: reading costs
time, and no honest answer is that long.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping

from .base import Verdict, Verifier

BOX_SHAPES = {4: (2, 2), 6: (2, 3), 9: (3, 3)}  # side -> (box rows, box columns)
_SIDE_OF_LENGTH = {side * side: side for side in BOX_SHAPES}
# Answer sections longer than this many characters per cell (at least MIN_ANSWER_LIMIT) are
# `too_long`, unread: a written-out 9x9 grid is ~200 characters, and reading costs ~0.5 s per MB.
CHARS_PER_CELL = 200
MIN_ANSWER_LIMIT = 4000


# ---------------------------------------------------------------------- grids


def grid_size(grid: str, field: str = "grid") -> int:
    """The side N of a row-major grid string, from its length (16, 36 or 81 cells)."""
    side = _SIDE_OF_LENGTH.get(len(grid))
    if side is None:
        raise ValueError(f"a sudoku {field} has 16, 36 or 81 cells (4x4, 6x6, 9x9), got {len(grid)} in "
                         f"{grid[:100]!r}; write it row-major, '.' or '0' for blanks")
    return side


def normalise_grid(value, field: str = "puzzle") -> str:
    """An example's grid as a row-major string of digits and ``.``; ValueError when it is not one."""
    if not isinstance(value, str):
        raise ValueError(f"sudoku {field} must be a string of digits and '.', got {type(value).__name__}")
    grid = "".join(value.split()).replace("0", ".")
    side = grid_size(grid, field)
    bad = sorted({ch for ch in grid if ch != "." and not ("1" <= ch <= str(side))})
    if bad:
        raise ValueError(f"sudoku {field} has characters {''.join(bad)!r}; a {side}x{side} grid uses 1-{side} and '.'")
    return grid


@dataclass(frozen=True)
class Geometry:
    """The units of a side's grid: the checker finds conflicts in them, the solvers in sudoku_generator deduce."""

    side: int
    row: tuple[int, ...]  # cell -> its row, column, box
    col: tuple[int, ...]
    box: tuple[int, ...]
    rows: tuple[tuple[int, ...], ...]
    cols: tuple[tuple[int, ...], ...]
    boxes: tuple[tuple[int, ...], ...]
    peers: tuple[tuple[int, ...], ...]
    # (cells in box and line, rest of the box, rest of the line) for locked candidates
    intersections: tuple[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...]

    @property
    def units(self):
        return self.rows + self.cols + self.boxes


@lru_cache(maxsize=None)
def geometry_of(side: int) -> Geometry:
    """The rows, columns, boxes and peers of a ``side`` x ``side`` grid (built once per side)."""
    box_rows, box_cols = BOX_SHAPES[side]
    cells = range(side * side)
    row = tuple(i // side for i in cells)
    col = tuple(i % side for i in cells)
    box = tuple((row[i] // box_rows) * (side // box_cols) + col[i] // box_cols for i in cells)
    rows = tuple(tuple(i for i in cells if row[i] == r) for r in range(side))
    cols = tuple(tuple(i for i in cells if col[i] == c) for c in range(side))
    boxes = tuple(tuple(i for i in cells if box[i] == b) for b in range(side))
    peers = tuple(tuple(sorted(set(rows[row[i]] + cols[col[i]] + boxes[box[i]]) - {i})) for i in cells)
    intersections = []
    for box_cells in boxes:
        for line in {rows[row[i]] for i in box_cells} | {cols[col[i]] for i in box_cells}:
            shared = tuple(i for i in box_cells if i in line)
            intersections.append((shared, tuple(i for i in box_cells if i not in line),
                                  tuple(i for i in line if i not in box_cells)))
    return Geometry(side, row, col, box, rows, cols, boxes, peers, tuple(sorted(intersections)))



def check_solution(grid: str, puzzle: str) -> str | None:
    """None when ``grid`` (from ``extract_grid``) solves ``puzzle`` by the rules, else the reason."""
    side = grid_size(puzzle)
    if len(grid) != side * side:
        return "wrong_size"
    if any(ch != "." and not "1" <= ch <= str(side) for ch in grid):
        return "invalid_digit"
    if any(given != "." and ch not in (".", given) for ch, given in zip(grid, puzzle)):
        return "givens_changed"
    if "." in grid:
        return "incomplete"
    return _first_conflict(grid)


def _first_conflict(grid: str) -> str | None:
    """``row_conflict``, ``column_conflict`` or ``box_conflict``: the first kind of unit repeating a digit."""
    geometry = geometry_of(grid_size(grid))
    for reason, units in (("row_conflict", geometry.rows), ("column_conflict", geometry.cols),
                          ("box_conflict", geometry.boxes)):
        for unit in units:
            digits = [grid[i] for i in unit if grid[i] != "."]
            if len(set(digits)) != len(digits):
                return reason
    return None


# ---------------------------------------------------------------------- reading the answer

# One left-to-right pass, so "\\\hline" is a line break then a command.
_LATEX = re.compile(r"\\(?:begin|end)\{[^{}]*\}(?:\{[^{}]*\})?|\\\\|\\[A-Za-z]+")
# Labels that are never cells: "Row 1:", "R1:", "Row 1.", "1)", "#1:", "A |", "a)", "| A |". One
# whitespace run per position, so no quadratic backtracking on long blank lines.
_ROW_LABEL = re.compile(r"\s*(?:\|\s*)?(?:(?:r(?:ow)?\s*)?#?\d+\s*[:)]|r(?:ow)?\s*#?\d+\s*\.|[a-z]\s*[|:)])",
                        re.IGNORECASE)
_NUMBERED_ROW = re.compile(r"\s*(\d)\.(?=\s)")  # "3. ": a label only on the third row (a blank may be "3.")
_TABLE_RULE_CHARACTERS = frozenset("|-: \t")  # Markdown's |---|:-:| (a set, not a regex: no backtracking)
_CORNER = re.compile(r"\s*\|\s*\|")  # a header whose first cell is empty: the rows below are labelled
_SEPARATORS = frozenset(",;|&[](){}<>$`'\"-+=:_~*#/\\!\u2212\u2013\u2014")  # and minus, en and em dashes
_BLANKS = frozenset(".?")


def _latex_to_lines(match: re.Match) -> str:
    return "\n" if match.group() == "\\\\" else " "


def _unlabel(line: str, label_column: bool) -> str:
    """``line`` without a row label that can never be a cell ("Row 1:", "A |", a table's label column)."""
    if label_column:  # drop the table's first cell (string search: a regex would backtrack on long lines)
        rest = line.lstrip()
        rest = rest[1:] if rest.startswith("|") else rest
        cut = rest.find("|")
        return rest[cut + 1 :] if cut >= 0 else line
    label = _ROW_LABEL.match(line)
    return line[label.end() :] if label else line


def _numbered_cells(line: str, row_number: int) -> list[str] | None:
    """The cells after a "3. " label when ``row_number`` is 3; else None. Decided per run: a blank may be "3."."""
    numbered = _NUMBERED_ROW.match(line)
    if numbered is None or int(numbered[1]) != row_number:
        return None
    return _row_cells(line[numbered.end():])


def _row_cells(line: str) -> list[str] | None:
    """The cells of a grid row, label removed (possibly none: a divider); None for a line of text."""
    cells = []
    for ch in line:
        if ch.isspace() or ch in _SEPARATORS or "\u2500" <= ch <= "\u257f":  # box-drawing rules
            continue
        digit = unicodedata.decimal(ch, None)
        if digit is not None:
            cells.append(str(digit) if digit else ".")
        elif ch in _BLANKS:
            cells.append(".")
        else:
            return None
    return cells


@dataclass
class _Run:
    """Consecutive grid rows, each (cells, cells read after a "k. " label or None, is a Markdown header)."""

    side: int
    rows: list = field(default_factory=list)
    label_column: bool = False  # the table's header has an empty corner: each row's first cell is a label
    row_above: str | None = None  # the line just read, when it was a row: a header if a rule follows
    body_rows: int = 0  # rows that are not headers, so far

    def add(self, line: str) -> bool:
        """Read ``line`` into the run; False when it is text, which ends the run."""
        if _is_table_rule(line):
            if self.row_above is not None:  # the row above is the table's header
                self.rows[-1] = (*self.rows[-1][:2], True)
                self.body_rows -= 1
                self.label_column = bool(_CORNER.match(self.row_above))
            self.row_above = None
            return True
        unlabelled = _unlabel(line, self.label_column)
        cells = _row_cells(unlabelled)
        if cells is None:
            return False
        if cells:
            self.rows.append((cells, _numbered_cells(unlabelled, self.body_rows % self.side + 1), False))
            self.body_rows += 1
        self.row_above = line if cells else None
        return True

    def cells(self) -> list[str]:
        """The run's cells. "k. " labels count when every row of the body has its own number. A
        Markdown header is column names unless the body is one row short of whole grids without
        it: models put a grid's first row in the header, as a table needs one."""
        body = [row for row in self.rows if not row[2]]
        numbered = bool(body) and all(row[1] is not None for row in body)
        read = [(labelled if numbered and not header else cells, header) for cells, labelled, header in self.rows]
        body_cells = [c for cells, header in read if not header for c in cells]
        every = [c for cells, _ in read for c in cells]  # in order: a "header" may be a row above a band rule
        area = self.side * self.side
        return every if len(body_cells) % area and not len(every) % area else body_cells


def _is_table_rule(line: str) -> bool:
    return "|" in line and "-" in line and set(line) <= _TABLE_RULE_CHARACTERS


def _runs(text: str, side: int) -> list[list[str]]:
    """The cells of every run of grid rows in ``text`` (rules in the module doc)."""
    runs, run = [], _Run(side)
    for line in text.splitlines():
        if not run.add(line):  # text ends the run
            runs.append(run.cells())
            run = _Run(side)
    runs.append(run.cells())
    return [cells for cells in runs if cells]


def extract_grids(text: str, side: int) -> list[str]:
    """Every grid written in ``text``, in order, as row-major cell strings (rules in the module doc).

    A string of the wrong length is a grid of the wrong size; digits are ASCII, blanks ``.``.
    """
    text = _LATEX.sub(_latex_to_lines, unicodedata.normalize("NFKC", text))
    grids, area = [], side * side
    for run in _runs(text, side):
        if len(run) < side:
            continue
        if len(run) > area and len(run) % area == 0:  # grids back to back
            grids.extend("".join(run[i : i + area]) for i in range(0, len(run), area))
        else:
            grids.append("".join(run))
    return grids


def extract_grid(text: str, side: int) -> str | None:
    """The last grid written in ``text``, or None."""
    grids = extract_grids(text, side)
    return grids[-1] if grids else None


# ---------------------------------------------------------------------- the verifier


class SudokuVerifier(Verifier):
    """Judges the grid in the answer section by the rules of sudoku (module doc).

    Example fields: ``puzzle`` (required), ``solution`` (optional, for ``details`` only;
    checked to solve the puzzle).
    """

    name = "sudoku"

    def check_example(self, example: Mapping) -> None:
        puzzle = example_puzzle(example)
        if example.get("solution") is not None:
            example_solution(example, puzzle)

    def answer_section_limit(self, example: Mapping) -> int:
        return max(MIN_ANSWER_LIMIT, CHARS_PER_CELL * len(example_puzzle(example)))

    def judge(self, answer: str, example: Mapping) -> Verdict:
        puzzle = example_puzzle(example)
        grids = extract_grids(answer, grid_size(puzzle))
        if not grids:
            return Verdict("unparsed", reason="no_answer")
        # A restated puzzle is not an answer; two different answers are wrong (no listing candidates).
        answers = [g for g in grids if g != puzzle] or grids
        grid = answers[-1]
        if len(set(answers)) > 1:
            return Verdict("wrong", answer=grid, reason="multiple_answers")
        reason = check_solution(grid, puzzle)
        details = {}
        if example.get("solution") is not None:
            solution = example_solution(example, puzzle)
            if len(grid) == len(solution):
                details = {"cells_correct": sum(a == b for a, b in zip(grid, solution)), "cells": len(solution)}
        return Verdict("correct" if reason is None else "wrong", answer=grid, reason=reason, details=details)


def example_puzzle(example: Mapping) -> str:
    """The example's puzzle, normalised; ValueError when it is missing, malformed or its givens clash."""
    if "puzzle" not in example:
        raise ValueError("sudoku example has no 'puzzle' field; give the grid as a string of digits and '.'")
    puzzle = normalise_grid(example["puzzle"])
    clash = _first_conflict(puzzle)
    if clash:
        raise ValueError(f"sudoku puzzle {puzzle!r} repeats a given ({clash}), so nothing solves it; fix the puzzle")
    return puzzle


def example_solution(example: Mapping, puzzle: str) -> str:
    """The example's solution, normalised; ValueError unless it solves ``puzzle``."""
    solution = normalise_grid(example["solution"], "solution")
    if len(solution) != len(puzzle):
        raise ValueError(f"sudoku solution has {len(solution)} cells but the puzzle {len(puzzle)}; fix the row")
    problem = check_solution(solution, puzzle)
    if problem:
        raise ValueError(f"sudoku solution {solution!r} does not solve the puzzle ({problem}); "
                         f"fix it or leave the solution out")
    return solution
