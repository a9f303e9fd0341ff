"""Sudoku puzzles: a solution counter, a grader by technique, and a generator of unique puzzles.

Grids are ``rlcot.verifiers.sudoku``'s representation (a row-major string, ``.`` for a
blank); inside, the solvers work on a list of ints (0 for a blank) and bitmasks, bit
d-1 standing for digit d. ``count_solutions`` and ``solve`` search by backtracking on
the most constrained cell; the generator calls the same search with a seeded
``random.Random`` to shuffle the digit order.

Difficulty. ``grade`` runs a logical solver that always applies the easiest
technique that makes progress: naked singles, then hidden singles, naked pairs,
locked candidates (pointing and claiming). A puzzle is ``easy`` when naked singles
alone finish it, ``medium`` when logic finishes it but needs more than naked
singles, ``hard`` when logic stalls and search is needed. The generator fills a
random grid (randomised backtracking), then removes givens in random order, keeping
a removal only while the target still holds: for easy and medium, "logic at that
level finishes the puzzle", which also proves the solution unique; for hard, a
removal that defeats logic is kept when the solution count (search, stopped at 2)
is 1. Logic is monotone in the givens (fewer givens, fewer deductions), so once a
puzzle needs search it keeps needing it, and the final grade is checked anyway.
An attempt that ends at the wrong grade (a medium attempt that naked singles still
finish) starts over from a new grid, with the same seeded generator. Every item is
seeded as ``seed + index``: ``generate_item`` rebuilds any row alone. Every 4x4
puzzle with one solution falls to naked singles, so 4x4 offers only ``easy``
(``REACHABLE``); 6x6 and 9x9 offer all three.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .sudoku import BOX_SHAPES, geometry_of, grid_size, normalise_grid

TECHNIQUES = ("naked_single", "hidden_single", "naked_pair", "locked_candidates")
DIFFICULTIES = ("easy", "medium", "hard")
# Which difficulties a side can reach: every 4x4 puzzle with one solution falls to naked singles
# (checked exhaustively over all 2**16 sets of givens of both essentially different 4x4 grids).
REACHABLE = {4: ("easy",), 6: DIFFICULTIES, 9: DIFFICULTIES}
# Fresh grids tried per item. An attempt lands on its target about 5% of the time for 6x6 hard,
# 30% for 6x6 medium, 40% for 9x9 hard, 99% for 9x9 medium, always for easy: 2000 never runs out.
MAX_ATTEMPTS = 2000


def _values(grid: str) -> list[int]:
    return [0 if ch == "." else int(ch) for ch in grid]


def _grid(values: list[int]) -> str:
    return "".join(str(v) if v else "." for v in values)


# ---------------------------------------------------------------------- search


def _search(values: list[int], side: int, limit: int, rng: random.Random | None = None) -> tuple[int, list[int] | None]:
    """(number of solutions up to ``limit``, the first one found); ``rng`` shuffles digit order.

    Bitmask backtracking on the most constrained cell (bit d-1 stands for digit d).
    """
    geometry = geometry_of(side)
    row_of, col_of, box_of = geometry.row, geometry.col, geometry.box
    full = (1 << side) - 1
    rows, cols, boxes = [0] * side, [0] * side, [0] * side
    values = list(values)
    empty = []
    for i, value in enumerate(values):
        if not value:
            empty.append(i)
            continue
        bit = 1 << (value - 1)
        if (rows[row_of[i]] | cols[col_of[i]] | boxes[box_of[i]]) & bit:
            return 0, None  # the givens already clash
        rows[row_of[i]] |= bit
        cols[col_of[i]] |= bit
        boxes[box_of[i]] |= bit
    found: list[list[int]] = []
    count = 0

    def descend(depth: int) -> bool:  # True: stop, the limit is reached
        nonlocal count
        if depth == len(empty):
            count += 1
            if not found:
                found.append(list(values))
            return count >= limit
        best, best_mask, best_bits = depth, 0, side + 1
        for j in range(depth, len(empty)):
            i = empty[j]
            mask = full & ~(rows[row_of[i]] | cols[col_of[i]] | boxes[box_of[i]])
            bits = mask.bit_count()
            if bits < best_bits:
                best, best_mask, best_bits = j, mask, bits
                if bits <= 1:
                    break
        if not best_mask:
            return False
        empty[depth], empty[best] = empty[best], empty[depth]
        i = empty[depth]
        r, c, b = row_of[i], col_of[i], box_of[i]
        digits = [d for d in range(side) if best_mask >> d & 1]
        if rng is not None:
            rng.shuffle(digits)
        for d in digits:
            bit = 1 << d
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
            values[i] = d + 1
            stop = descend(depth + 1)
            rows[r] ^= bit
            cols[c] ^= bit
            boxes[b] ^= bit
            if stop:
                values[i] = 0
                return True
        values[i] = 0
        return False

    descend(0)
    return count, (found[0] if found else None)


def count_solutions(puzzle: str, limit: int = 2) -> int:
    """How many solutions ``puzzle`` has, counting no further than ``limit``."""
    puzzle = normalise_grid(puzzle)
    return _search(_values(puzzle), grid_size(puzzle), limit)[0]


def solve(puzzle: str) -> str | None:
    """A solution of ``puzzle`` (the first search finds), or None when it has none."""
    puzzle = normalise_grid(puzzle)
    solution = _search(_values(puzzle), grid_size(puzzle), 1)[1]
    return None if solution is None else _grid(solution)


# ---------------------------------------------------------------------- logic


def _logic(values: list[int], side: int, max_level: int) -> tuple[bool, set[int]]:
    """Solve with techniques up to ``TECHNIQUES[max_level]``: (solved, levels that made progress).

    Always uses the easiest technique that makes progress, and starts over from
    naked singles after any progress, so the levels used are the ones needed.
    """
    geometry = geometry_of(side)
    full = (1 << side) - 1
    units, peers, n = geometry.units, geometry.peers, side * side
    placed = [1 << (v - 1) if v else 0 for v in values]
    candidates = [0] * n
    for i in range(n):
        if not placed[i]:
            seen = 0
            for p in peers[i]:
                seen |= placed[p]
            candidates[i] = full & ~seen
            if not candidates[i]:
                return False, set()
    remaining = placed.count(0)
    used: set[int] = set()

    def place(i: int, bit: int) -> bool:  # False: a contradiction (the puzzle has no solution)
        nonlocal remaining
        placed[i], candidates[i] = bit, 0
        remaining -= 1
        for p in peers[i]:
            if candidates[p] & bit:
                candidates[p] ^= bit
                if not candidates[p]:
                    return False
        return True

    def eliminate(cells, mask: int) -> bool | None:  # True: progress, None: contradiction
        progress = False
        for j in cells:
            if candidates[j] & mask:
                candidates[j] &= ~mask
                progress = True
                if not candidates[j] and not placed[j]:
                    return None
        return progress

    while remaining:
        level, progress = 0, False
        for i in range(n):  # naked singles
            mask = candidates[i]
            if mask and not mask & (mask - 1):
                if not place(i, mask):
                    return False, used
                progress = True
        if not progress and max_level >= 1:  # hidden singles
            level = 1
            for unit in units:
                once = twice = 0
                for i in unit:
                    twice |= once & candidates[i]
                    once |= candidates[i]
                hidden = once & ~twice
                while hidden:
                    bit = hidden & -hidden
                    hidden ^= bit
                    for i in unit:
                        if candidates[i] & bit:
                            if not place(i, bit):
                                return False, used
                            progress = True
                            break
        if not progress and max_level >= 2:  # naked pairs
            level = 2
            for unit in units:
                pairs: dict[int, int] = {}
                for i in unit:
                    mask = candidates[i]
                    if mask.bit_count() != 2:
                        continue
                    if mask in pairs:
                        result = eliminate([j for j in unit if j != i and j != pairs[mask]], mask)
                        if result is None:
                            return False, used
                        progress = progress or result
                    else:
                        pairs[mask] = i
        if not progress and max_level >= 3:  # locked candidates: pointing and claiming
            level = 3
            for shared, box_rest, line_rest in geometry.intersections:
                inside = box_only = line_only = 0
                for i in shared:
                    inside |= candidates[i]
                for i in box_rest:
                    box_only |= candidates[i]
                for i in line_rest:
                    line_only |= candidates[i]
                for cells, mask in ((line_rest, inside & ~box_only), (box_rest, inside & ~line_only)):
                    result = eliminate(cells, mask) if mask else False
                    if result is None:
                        return False, used
                    progress = progress or result
        if not progress:
            return False, used
        used.add(level)
    return True, used


@dataclass(frozen=True)
class Grade:
    difficulty: str  # easy, medium or hard
    techniques: tuple[str, ...]  # the techniques logic needed, easiest first; "search" last when it stalled


def grade(puzzle: str) -> Grade:
    """How hard ``puzzle`` is for the logical solver (module doc). Meant for puzzles with one solution:
    one with several, or none, stalls logic and grades as hard."""
    puzzle = normalise_grid(puzzle)
    return _grade(_values(puzzle), grid_size(puzzle))


def _grade(values: list[int], side: int) -> Grade:
    solved, used = _logic(values, side, len(TECHNIQUES) - 1)
    techniques = tuple(TECHNIQUES[level] for level in sorted(used))
    if not solved:
        return Grade("hard", techniques + ("search",))
    return Grade("easy" if used <= {0} else "medium", techniques)


# ---------------------------------------------------------------------- generation


def _dig(solution: list[int], side: int, difficulty: str, rng: random.Random) -> list[int]:
    """Remove givens from a full grid in random order while the target difficulty allows it."""
    puzzle = list(solution)
    order = list(range(side * side))
    rng.shuffle(order)
    needs_search = False
    for i in order:
        given, puzzle[i] = puzzle[i], 0
        if difficulty == "easy":
            keep_blank = _logic(puzzle, side, 0)[0]
        elif difficulty == "medium" or not needs_search:
            keep_blank = _logic(puzzle, side, len(TECHNIQUES) - 1)[0]
            if not keep_blank and difficulty == "hard":  # logic is beaten: is the solution still unique?
                keep_blank = needs_search = _search(puzzle, side, 2)[0] == 1
        else:
            keep_blank = _search(puzzle, side, 2)[0] == 1
        if not keep_blank:
            puzzle[i] = given
    return puzzle


def _check_generation(size: int, difficulty: str) -> None:
    if size not in BOX_SHAPES:
        raise ValueError(f"sudoku size {size!r} is not supported; choose 4, 6 or 9")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"sudoku difficulty {difficulty!r} is not one of {', '.join(DIFFICULTIES)}")
    if difficulty not in REACHABLE[size]:
        raise ValueError(
            f"{size}x{size} sudoku never needs {difficulty!r} solving; choose {' or '.join(REACHABLE[size])}"
        )


def generate_item(index: int, size: int = 9, seed: int = 0, difficulty: str = "easy") -> dict:
    """Row ``index`` of ``generate(..., seed=seed)``, built alone from the seed ``seed + index``."""
    _check_generation(size, difficulty)
    rng = random.Random(seed + index)
    for _ in range(MAX_ATTEMPTS):
        solution = _search([0] * (size * size), size, 1, rng)[1]
        puzzle = _dig(solution, size, difficulty, rng)
        graded = _grade(puzzle, size)
        if graded.difficulty == difficulty:
            return {
                "id": f"sudoku-{size}x{size}-{difficulty}-{seed + index}",
                "puzzle": _grid(puzzle),
                "solution": _grid(solution),
                "size": size,
                "difficulty": difficulty,
                "techniques": list(graded.techniques),
                "givens": sum(1 for v in puzzle if v),
            }
    raise RuntimeError(
        f"no {difficulty} {size}x{size} sudoku in {MAX_ATTEMPTS} attempts for seed {seed + index}; try another seed"
    )


def generate(n: int, size: int = 9, seed: int = 0, difficulty: str = "easy") -> list[dict]:
    """``n`` puzzles with unique solutions, item i seeded as ``seed + i`` (see ``generate_item``)."""
    if n < 0:
        raise ValueError(f"n={n} is negative; ask for at least 0 puzzles")
    _check_generation(size, difficulty)
    return [generate_item(index, size, seed, difficulty) for index in range(n)]
