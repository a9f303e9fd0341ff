"""Mini crosswords: a generator that fills symmetric black-square patterns with WordNet words.

Puzzles are ``rlcot.verifiers.crossword``'s representation (``grid``, ``solution`` and
``clues`` fields, entries numbered by its ``number_grid``), so the checker reads what this writes.

Generation (``generate``/``generate_item``). Item i is seeded ``seed + i``. The
black-square patterns of a ``size`` x ``size`` grid (3 to 5) are every pattern that is
symmetric under 180-degree rotation, keeps its white squares connected, has no run of
length 2 (runs are 1 or >= 3 long: entries are 3-5 letters) and every white square in
an entry, with 0-1 (3x3), 0-4 (4x4) or 2-6 (5x5) black squares (``patterns``: 2, 8
and 60 of them; ``BLACKS``). An open 5x5 is a double word square, which the ~1,600
five-letter words rarely fill (3 seeds in 20 within 20,000 search nodes, 1.5 s each),
so 5x5 grids have at least two blacks. The item draws a number of black squares, then
a pattern with that many, so each count is equally likely. A backtracking filler fills it from the word file: the slot
with fewest candidate words first (bitmask indexes per position and letter),
candidates in an order shuffled by the seed, every crossing slot checked to keep a
candidate, no word twice in a grid. A fill that exceeds ``FILL_BUDGET`` search nodes
is abandoned and a pattern with more black squares is drawn (about one 2-black 5x5 in
seven). Mean time per item on one core: 3x3 1 ms, 4x4 11 ms, 5x5 70 ms (95th
percentile 0.3 s). Clues are the words' glosses.

Word source and licence. ``verifiers/data/crossword_words.tsv`` holds ~3,100 common
3-5 letter words (WORD<TAB>clue) built from WordNet 3.0 by
``scripts/build_crossword_words.py`` (filtering rules in its docstring: words tagged
at least once in WordNet's sense-tagged corpora, offensive words and senses out,
clues that give the answer away out). WordNet 3.0 is Copyright 2006 by Princeton
University; its licence is in ``verifiers/data/WORDNET_LICENSE`` and travels with the
file.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from functools import cache, lru_cache
from importlib import resources
from types import MappingProxyType

from .crossword import BLACK, BLANK, DIRECTIONS, Entry, number_grid

SIZES = (3, 4, 5)
# Black squares allowed per size. More than about a quarter makes degenerate minis; an open
# 5x5 (a double word square) rarely fills from ~1,600 five-letter words (module doc).
BLACKS = {3: (0, 1), 4: (0, 4), 5: (2, 6)}
FILL_BUDGET = 3000  # search nodes per fill attempt before trying a pattern with more blacks
MAX_ATTEMPTS = 50
WORDS_FILE = "crossword_words.tsv"


# ---------------------------------------------------------------------- words and patterns


@lru_cache(maxsize=1)
def load_words() -> Mapping[str, str]:
    """WORD -> clue from the shipped WordNet-derived file (read once)."""
    text = resources.files("rlcot.verifiers").joinpath("data", WORDS_FILE).read_text(encoding="utf-8")
    words = {}
    for number, line in enumerate(text.splitlines(), 1):
        word, _, clue = line.partition("\t")
        if not re.fullmatch(r"[A-Z]{3,5}", word) or not clue:
            raise ValueError(
                f"{WORDS_FILE} line {number} is {line!r}; rebuild the file with scripts/build_crossword_words.py"
            )
        words[word] = clue
    return MappingProxyType(words)


def _valid_pattern(grid: list[str]) -> bool:
    """White squares connected; every run 1 or >= 3 long; every white square in an entry."""
    size = len(grid)
    white = {(r, c) for r in range(size) for c in range(size) if grid[r][c] != BLACK}
    if not white:
        return False
    covered = set()
    for entry in number_grid(grid):
        if len(entry.cells) < 3:
            return False
        covered.update(entry.cells)
    if covered != white:
        return False
    seen, stack = set(), [min(white)]
    while stack:
        r, c = stack.pop()
        if (r, c) in seen:
            continue
        seen.add((r, c))
        stack.extend(n for n in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)) if n in white)
    return seen == white


@cache
def patterns(size: int) -> tuple[tuple[str, ...], ...]:
    """Every valid 180-degree-symmetric pattern of a size x size grid with a number of black
    squares in ``BLACKS[size]``, fewest blacks first (validity in ``_valid_pattern``)."""
    _check_size(size)
    orbits = sorted({tuple(sorted({(r, c), (size - 1 - r, size - 1 - c)})) for r in range(size) for c in range(size)})
    found = []
    for bits in range(1 << len(orbits)):
        blacks = {cell for i, orbit in enumerate(orbits) if bits >> i & 1 for cell in orbit}
        if not BLACKS[size][0] <= len(blacks) <= BLACKS[size][1]:
            continue
        grid = ["".join(BLACK if (r, c) in blacks else BLANK for c in range(size)) for r in range(size)]
        if _valid_pattern(grid):
            found.append((len(blacks), tuple(grid)))
    return tuple(grid for _, grid in sorted(found))


def _check_size(size) -> None:
    if size not in SIZES:
        raise ValueError(f"crossword size={size!r}; choose one of {', '.join(map(str, SIZES))}")


# ---------------------------------------------------------------------- filling


class _OutOfBudget(Exception):
    pass


def _index(words: list[str]) -> tuple[int, list[dict[str, int]]]:
    """All-words mask and, per position, letter -> bitmask of the words with that letter there."""
    by_position = [{} for _ in range(len(words[0]))]
    for bit, word in enumerate(words):
        for position, letter in enumerate(word):
            by_position[position][letter] = by_position[position].get(letter, 0) | (1 << bit)
    return (1 << len(words)) - 1, by_position


def fill(grid: Sequence[str], rng: random.Random, budget: int = FILL_BUDGET) -> dict[str, str] | None:
    """Entry key -> word filling ``grid`` from the word file, or None (no fill, or over budget)."""
    vocabulary = load_words()
    slots = number_grid(grid)
    lexicon = {}
    for length in {len(slot.cells) for slot in slots}:
        words = sorted(w for w in vocabulary if len(w) == length)
        rng.shuffle(words)
        lexicon[length] = (words, *_index(words))
    letters: dict[tuple[int, int], str] = {}
    chosen: dict[str, str] = {}
    nodes = 0

    def candidates(slot: Entry) -> int:
        _, mask, by_position = lexicon[len(slot.cells)]
        for position, cell in enumerate(slot.cells):
            if cell in letters:
                mask &= by_position[position].get(letters[cell], 0)
        return mask

    def search() -> bool:
        nonlocal nodes
        nodes += 1
        if nodes > budget:
            raise _OutOfBudget
        open_slots = [slot for slot in slots if slot.key not in chosen]
        if not open_slots:
            return True
        masks = {slot.key: candidates(slot) for slot in open_slots}
        slot = min(open_slots, key=lambda s: masks[s.key].bit_count())
        words = lexicon[len(slot.cells)][0]
        mask = masks[slot.key]
        used = set(chosen.values())
        while mask:
            low = mask & -mask
            mask ^= low
            word = words[low.bit_length() - 1]
            if word in used:
                continue
            placed = [cell for cell in slot.cells if cell not in letters]
            for cell in placed:
                letters[cell] = word[slot.cells.index(cell)]
            chosen[slot.key] = word
            if all(candidates(other) for other in open_slots if other is not slot) and search():
                return True
            del chosen[slot.key]
            for cell in placed:
                del letters[cell]
        return False

    try:
        return dict(chosen) if search() else None
    except _OutOfBudget:
        return None


# ---------------------------------------------------------------------- generation


def generate_item(index: int, size: int = 5, seed: int = 0) -> dict:
    """Row ``index`` of ``generate(..., seed=seed)``, built alone from the seed ``seed + index``."""
    _check_size(size)
    rng = random.Random(seed + index)
    by_blacks: dict[int, list[tuple[str, ...]]] = {}
    for pattern in patterns(size):
        by_blacks.setdefault(sum(row.count(BLACK) for row in pattern), []).append(pattern)
    words = load_words()
    blacks = rng.choice(sorted(by_blacks))  # the number of black squares first: open grids are as likely as any
    for _ in range(MAX_ATTEMPTS):
        grid = rng.choice(by_blacks[blacks])
        filled = fill(grid, rng)
        if filled is None:  # not filled within the budget: more black squares next, if there are any
            blacks = min((b for b in by_blacks if b > blacks), default=blacks)
            continue
        slots = {slot.key: slot for slot in number_grid(grid)}
        solution = [list(row) for row in grid]
        for key, word in filled.items():
            for (r, c), letter in zip(slots[key].cells, word):
                solution[r][c] = letter
        clues = {"across": {}, "down": {}}
        for key, slot in slots.items():
            clues[DIRECTIONS[slot.direction]][str(slot.number)] = words[filled[key]]
        return {
            "id": f"crossword-{size}x{size}-{seed + index}",
            "grid": list(grid),
            "clues": clues,
            "solution": ["".join(row) for row in solution],
            "size": size,
        }
    raise RuntimeError(f"no {size}x{size} crossword filled in {MAX_ATTEMPTS} attempts for seed {seed + index}")


def generate(n: int, size: int = 5, seed: int = 0) -> list[dict]:
    """``n`` mini crosswords, item i seeded as ``seed + i`` (see ``generate_item``)."""
    if n < 0:
        raise ValueError(f"n={n} is negative; ask for at least 0 puzzles")
    _check_size(size)
    return [generate_item(index, size, seed) for index in range(n)]
