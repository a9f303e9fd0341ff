"""Tasks: a dataset builder, the verifier that scores it, and the answer cue for forcing.

One module per family, as in reasoning-gym, each ending by registering its tasks:
``arith`` (procedural, with unanswerable variants for abstention), ``chain`` (chains of
k arithmetic steps, as expressions or word problems, whose thinking grows with k),
``gsm8k`` (its test and train splits ship with the package; a JSONL file or the hub
instead), ``puzzles`` (``sudoku`` and ``crossword``), ``jsonl`` for a user's own
rows (``jsonl:PATH``) scored by a named verifier, and ``hf_dataset`` for any Hugging Face
dataset (``hf:NAME[:CONFIG][@SPLIT]``: the hub, a saved directory, parquet/JSON/CSV
files), read by the same machinery with the same column mapping. ``base`` holds the contract every
task keeps (``Task``: rows seeded as ``seed + index``, prompts, the verifier and its
options, the answer cue), the registry and ``get_task``; its docstring explains the
design.

Importing this package registers every built-in task; import names from here.
"""

from __future__ import annotations

from .arith import ArithTask
from .base import ABSTAIN_HINT, BUDGET_SENTENCE, MATH_CUE, TASKS, Task, get_task, register_task
from .chain import ChainTask
from .gsm8k import GSM8K_DIR, GSM8K_SPLITS, GSM8KTask
from .hf_dataset import HfDatasetTask
from .jsonl import JsonlTask
from .puzzles import CROSSWORD_INSTRUCTION, SUDOKU_INSTRUCTION, CrosswordTask, PuzzleTask, SudokuTask

__all__ = [
    "ABSTAIN_HINT", "BUDGET_SENTENCE", "CROSSWORD_INSTRUCTION", "GSM8K_DIR", "GSM8K_SPLITS", "MATH_CUE",
    "SUDOKU_INSTRUCTION", "TASKS",
    "ArithTask", "ChainTask", "CrosswordTask", "GSM8KTask", "HfDatasetTask", "JsonlTask", "PuzzleTask", "SudokuTask",
    "Task",
    "get_task", "register_task",
]
