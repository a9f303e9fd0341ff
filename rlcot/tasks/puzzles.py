"""``sudoku`` and ``crossword``: puzzle families whose verifier package also generates the items.

The generators live beside their verifiers (``rlcot.verifiers.sudoku_generator``,
``rlcot.verifiers.crossword_generator``), seeded as ``seed + index`` like every
procedural task; a task here only asks for ``generate(n, seed=, ...)`` with its own
options (size, difficulty) and renders each item as a question. Their answers are not
boxed: the instruction asks for the grid or the entries as lines, and the answer cue
opens that section (``The completed grid:`` or ``1A:``), so ``gold_continuation`` is
what follows that cue.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import Task, check_n, register_task

SUDOKU_INSTRUCTION = (
    "Think step by step between <think> and </think>. "
    "After </think>, write the completed grid, one row per line, digits separated by spaces."
)
CROSSWORD_INSTRUCTION = (
    "Think step by step between <think> and </think>. "
    "After </think>, write every entry as 1A: WORD or 2D: WORD, one per line."
)


@dataclass(frozen=True)
class PuzzleTask(Task):
    """A puzzle family whose verifier module also generates its items (``generate(n, seed=, ...)``)."""

    def rows(self, n: int, seed: int = 0) -> list[dict]:
        check_n(n)
        return [{**row, "question": self.question(row)} for row in self.generate(n, seed)]

    def generate(self, n: int, seed: int) -> list[dict]:
        raise NotImplementedError


@dataclass(frozen=True)
class SudokuTask(PuzzleTask):
    name: str = "sudoku"
    description: str = "sudoku puzzles with unique solutions (4x4, 6x6, 9x9)"
    verifier: str = "sudoku"
    answer_cue: str = "The completed grid:\n"
    instruction: str = SUDOKU_INSTRUCTION
    max_answer_tokens: int = 200
    size: int = 4
    difficulty: str = "easy"

    def generate(self, n: int, seed: int) -> list[dict]:
        from rlcot.verifiers.sudoku_generator import generate

        return generate(n, size=self.size, seed=seed, difficulty=self.difficulty)

    def gold_answer(self, row: dict) -> str:
        size = int(len(row["solution"]) ** 0.5)
        return "\n".join(" ".join(row["solution"][r * size : (r + 1) * size]) for r in range(size))

    def question(self, row: dict) -> str:
        size = row.get("size") or int(len(row["puzzle"]) ** 0.5)
        lines = [" ".join(row["puzzle"][r * size : (r + 1) * size]) for r in range(size)]
        return f"Solve this {size}x{size} sudoku ('.' is a blank):\n" + "\n".join(lines)


@dataclass(frozen=True)
class CrosswordTask(PuzzleTask):
    name: str = "crossword"
    description: str = "mini crosswords (3x3 to 5x5) with WordNet clues"
    verifier: str = "crossword"
    answer_cue: str = "1A:"
    instruction: str = CROSSWORD_INSTRUCTION
    max_answer_tokens: int = 120
    size: int = 4

    def generate(self, n: int, seed: int) -> list[dict]:
        from rlcot.verifiers.crossword_generator import generate

        return generate(n, size=self.size, seed=seed)

    def gold_answer(self, row: dict) -> str:
        return "\n".join(row["solution"])

    def gold_continuation(self, row: dict) -> str | None:
        """The entries after the forced ``1A:`` cue, one ``KEY: WORD`` per line."""
        from rlcot.verifiers.crossword import number_grid

        grid = row["solution"]
        lines = [f"{e.key}: {''.join(grid[r][c] for r, c in e.cells)}" for e in number_grid(grid)]
        text = "\n".join(lines)
        return text[len(self.answer_cue) :] if text.startswith(self.answer_cue) else None

    def question(self, row: dict) -> str:
        clues = []
        for direction, letter in (("across", "A"), ("down", "D")):
            for number, clue in sorted(row["clues"].get(direction, {}).items(), key=lambda kv: int(kv[0])):
                clues.append(f"{number}{letter}: {clue}")
        return (
            "Solve this crossword ('#' is a black square, '.' a blank):\n"
            + "\n".join(row["grid"])
            + "\nClues:\n"
            + "\n".join(clues)
        )


register_task(SudokuTask())
register_task(CrosswordTask())
