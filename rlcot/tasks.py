"""Tasks: a dataset builder, the verifier that scores it, and the answer cue for forcing.

A task ties the pieces of one problem family together: rows (plain dicts with at
least ``id`` and ``question``, and the fields its verifier reads), the verifier it is
scored by (a registered name and the options it needs: GSM8K's "what percent"
questions have bare golds, so its math verifier is lenient about ``%``), the
instruction the prompt carries, the cue budget forcing appends after a capped
thought, and how long an answer may be.

Every procedural item is seeded as ``seed + index`` (reasoning-gym's convention), so
any row can be rebuilt alone and a dataset of n rows is a prefix of one of n + 1.
Sampling seeds are separate: sample j of row i draws with
``derive_seed(seed, row id, j)``, so a row's samples never depend on its position.

A task whose rows may be unanswerable (``answerable: false``: arith with
``unanswerable > 0``, or a user's file holding such rows) says so in the
instruction: "If the problem cannot be answered, write \\boxed{IDK}". Without that
hint a model could never learn to abstain on them.

``Task.spec()`` is a plain dict that ``get_task(**spec)`` turns back into the same
task; runs record it, so a file of traces can be rescored with its own task.

Built-ins: ``arith`` (with unanswerable variants for abstention), ``gsm8k`` (its test
and train splits ship with the package; a JSONL file or the hub instead), ``sudoku``,
``crossword``, and ``jsonl:PATH`` for a user's own rows scored by a named verifier.
"""

from __future__ import annotations

import functools
import itertools
import random
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

from rlcot.verifiers.sections import last_boxed

from .generation.base import GenerationRequest, derive_seed
from .generation.budget import cue_opens_braces
from .jsonl import read_jsonl
from .thinking import DEFAULT_INSTRUCTION, ThinkingProtocol

MATH_CUE = "The final answer is \\boxed{"
ABSTAIN_HINT = " If the problem cannot be answered, write \\boxed{IDK}."


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    verifier: str  # a name for rlcot.verifiers.get_verifier
    answer_cue: str = MATH_CUE
    instruction: str = DEFAULT_INSTRUCTION
    max_answer_tokens: int = 64
    # options for the verifier's constructor (e.g. {"lenient_percent": True})
    verifier_options: dict[str, Any] = field(default_factory=dict, hash=False)

    def rows(self, n: int, seed: int = 0) -> list[dict]:
        raise NotImplementedError(f"task {self.name!r} has no rows of its own; it only scores rows given to it")

    def build_verifier(self):
        """The verifier this task is scored by, built with the task's options."""
        from rlcot.verifiers import get_verifier

        return get_verifier(self.verifier, **self.verifier_options)

    @property
    def offers_abstention(self) -> bool:
        """Whether some rows may be unanswerable, so the instruction offers ``\\boxed{IDK}``."""
        return False

    @property
    def full_instruction(self) -> str:
        return self.instruction + (ABSTAIN_HINT if self.offers_abstention else "")

    def spec(self) -> dict:
        """``get_task(**task.spec())`` rebuilds this task: its name, data file and changed options."""
        base = TASKS.get(self.name, JsonlTask())
        fixed = {"name", "description", "path", "id_prefix"}
        options = {f.name: getattr(self, f.name) for f in fields(self)
                   if f.name not in fixed and getattr(self, f.name) != getattr(base, f.name, None)}
        path = getattr(self, "path", "")
        if self.name == "jsonl":
            return {"name": f"jsonl:{path}", "data": None, "options": options}
        return {"name": self.name, "data": path or None, "options": options}

    def question(self, row: dict) -> str:
        return row["question"]

    def origins(self, rows: Sequence[dict]) -> list[str]:
        """Where each row comes from, for messages about it: ``id 'x'`` here (a file task adds ``FILE:LINE``)."""
        return [f"id {row.get('id')!r}" for row in rows]

    def gold_answer(self, row: dict) -> str:
        """The answer section a perfect model writes for ``row`` (contract tests, SFT data).

        The gold is a plain value, GSM8K's ``#### x``, or a MATH solution, whose boxes the
        math verifier reads as the gold (``rlcot.verifiers.math.gold_parts``); boxing the
        whole solution would make a second, different answer.
        """
        if row.get("answerable", True) is False:
            return "\\boxed{IDK}"
        if "answer" not in row:
            raise ValueError("the row has no 'answer'; add its gold answer, or mark it answerable: false")
        answer = row["answer"]
        if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
            kind = "null" if answer is None else type(answer).__name__
            raise ValueError(f"the row's answer is {answer!r} ({kind}); give the gold as a string "
                             "or a number, or mark the row answerable: false")
        answer = str(answer)
        if "####" in answer:
            gold = answer.split("####")[-1].strip().replace(",", "")
        elif last_boxed(answer) is not None:
            from rlcot.verifiers.math import gold_answer

            gold = gold_answer(row)
        else:
            gold = answer
        return f"The final answer is \\boxed{{{gold}}}."

    def worked_thought(self, row: dict) -> str | None:
        """A short correct line of thought for ``row`` (SFT warm-up data), or None where the task has none."""
        return None

    def gold_continuation(self, row: dict) -> str | None:
        """What a perfect model writes right after the forced answer cue, or None if undefined.

        The target of the gold log-probability a sweep reports beside accuracy: with the
        math cue ``The final answer is \\boxed{`` it is ``42}`` (or ``IDK}`` for an
        unanswerable row); with a cue that opens nothing it is the gold answer after the cue.
        """
        gold = self.gold_answer(row)
        if cue_opens_braces(self.answer_cue):
            inner = last_boxed(gold)
            return None if inner is None else inner + "}"
        if gold.startswith(self.answer_cue):
            return gold[len(self.answer_cue) :]
        return gold if self.answer_cue.endswith("\n") or not self.answer_cue else None

    def prompt(self, row: dict, tokenizer, protocol: ThinkingProtocol) -> str:
        """The prompt text for ``row`` (chat template, instruction, pre-filled ``<think>``), untokenised.

        The protocol's instruction, left at its default, becomes this task's.
        """
        if protocol.instruct and protocol.instruction == DEFAULT_INSTRUCTION:
            protocol = replace(protocol, instruction=self.full_instruction)
        return protocol.build_prompt(tokenizer, self.question(row))

    def requests(
        self, rows: Sequence[dict], tokenizer, protocol: ThinkingProtocol, seed: int = 0, samples: int = 1
    ) -> list[GenerationRequest]:
        """``samples`` requests per row, row-major; sample j of a row draws with ``derive_seed(seed, id, j)``."""
        if samples < 1:
            raise ValueError(f"samples={samples} must be >= 1")
        requests = []
        for row in rows:
            prompt = self.prompt(row, tokenizer, protocol)
            prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
            for sample in range(samples):
                requests.append(GenerationRequest(
                    prompt=prompt, prompt_ids=prompt_ids, answer_cue=self.answer_cue,
                    seed=derive_seed(seed, row["id"], sample), request_id=row["id"], sample=sample,
                ))
        return requests


def _check_n(n: int) -> None:
    if n < 0:
        raise ValueError(f"n={n} is negative; ask for at least 0 rows")


# ---------------------------------------------------------------------- arith

_NAMES = ("Tom", "Sara", "Ali", "Mei", "Lena", "Omar", "Ravi", "Ana", "Ben", "Zoe")
_ITEMS = ("apples", "marbles", "pencils", "stickers", "books", "coins", "cards", "shells")


# Each template returns (question, answer, the question with a needed number missing,
# a worked thought: the one line of reasoning that solves it, for SFT warm-up data).


def _add(rng: random.Random, name: str, item: str) -> tuple[str, int, str, str]:
    a, b = rng.randint(2, 60), rng.randint(2, 60)
    question = f"{name} has {a} {item} and buys {b} more. How many {item} does {name} have now?"
    missing = f"{name} has some {item} and buys {b} more. How many {item} does {name} have now?"
    return question, a + b, missing, f"{name} had {a} and buys {b} more: {a} + {b} = {a + b}."


def _subtract(rng: random.Random, name: str, item: str) -> tuple[str, int, str, str]:
    a = rng.randint(10, 90)
    b = rng.randint(1, a - 1)
    question = f"{name} has {a} {item} and gives away {b}. How many {item} does {name} have left?"
    missing = f"{name} has a bag of {item} and gives away {b}. How many {item} does {name} have left?"
    return question, a - b, missing, f"{name} had {a} and gives away {b}: {a} - {b} = {a - b}."


def _multiply(rng: random.Random, name: str, item: str) -> tuple[str, int, str, str]:
    boxes, each = rng.randint(2, 9), rng.randint(2, 12)
    question = f"{name} has {boxes} boxes with {each} {item} in each box. How many {item} does {name} have?"
    missing = f"{name} has {boxes} boxes of {item}. How many {item} does {name} have?"
    return question, boxes * each, missing, f"{boxes} boxes of {each} each: {boxes} x {each} = {boxes * each}."


def _divide(rng: random.Random, name: str, item: str) -> tuple[str, int, str, str]:
    friends, each = rng.randint(2, 8), rng.randint(2, 10)
    total = friends * each
    question = f"{name} shares {total} {item} equally among {friends} friends. How many {item} does each friend get?"
    missing = f"{name} shares {total} {item} equally among some friends. How many does each friend get?"
    return question, each, missing, f"{total} shared among {friends} friends: {total} / {friends} = {each}."


def _two_step(rng: random.Random, name: str, item: str) -> tuple[str, int, str, str]:
    a, b = rng.randint(5, 40), rng.randint(2, 30)
    c = rng.randint(1, a + b - 1)
    question = (
        f"{name} has {a} {item}, finds {b} more, then gives {c} to a friend. How many {item} does {name} have now?"
    )
    missing = f"{name} has {a} {item}, finds some more, then gives {c} to a friend. How many does {name} have now?"
    thought = f"{name} had {a}, finds {b}: {a} + {b} = {a + b}. Gives {c} away: {a + b} - {c} = {a + b - c}."
    return question, a + b - c, missing, thought


_TEMPLATES = (_add, _subtract, _multiply, _divide, _two_step)


@dataclass(frozen=True)
class ArithTask(Task):
    """Small arithmetic word problems with integer answers (+, -, x, /, two steps).

    ``unanswerable``: the fraction of rows whose problem lacks a needed quantity;
    their ``answer`` is None and ``answerable`` False, so the only right move is to
    abstain (``\\boxed{IDK}``), which gives abstention something to learn.
    """

    name: str = "arith"
    description: str = "procedural arithmetic word problems with integer answers"
    verifier: str = "math"
    unanswerable: float = 0.0

    def __post_init__(self):
        if not 0 <= self.unanswerable <= 1:
            raise ValueError(f"unanswerable={self.unanswerable} must be a fraction in [0, 1]")

    @property
    def offers_abstention(self) -> bool:
        return self.unanswerable > 0

    def item(self, index: int, seed: int = 0) -> dict:
        rng = random.Random(seed + index)
        template = _TEMPLATES[rng.randrange(len(_TEMPLATES))]
        question, answer, missing, thought = template(rng, rng.choice(_NAMES), rng.choice(_ITEMS))
        row = {"id": f"arith-{seed + index}", "question": question, "answer": str(answer),
               "kind": template.__name__[1:], "answerable": True, "thought": thought}
        if self.unanswerable and rng.random() < self.unanswerable:
            row.update(question=missing, answer=None, answerable=False,
                       thought="A number the question needs is not given, so the answer cannot be known.")
        return row

    def worked_thought(self, row: dict) -> str | None:
        return row["thought"]

    def rows(self, n: int, seed: int = 0) -> list[dict]:
        _check_n(n)
        return [self.item(index, seed) for index in range(n)]


# ---------------------------------------------------------------------- jsonl files


@dataclass(frozen=True)
class JsonlTask(Task):
    """A user's rows (``question`` and ``answer`` at least) scored by a named verifier."""

    name: str = "jsonl"
    description: str = "rows from a JSONL file"
    verifier: str = "math"
    path: str = ""
    id_prefix: str = ""  # row ids are PREFIX-LINE where a row has no id; default: the file's stem

    def rows(self, n: int, seed: int = 0) -> list[dict]:
        """The first n rows in file order (``seed`` only seeds sampling)."""
        _check_n(n)
        return [row for _, row in itertools.islice(self._numbered_rows(), n)]

    def origins(self, rows: Sequence[dict]) -> list[str]:
        """``FILE:LINE (id 'x')`` for each row of this file (found by its id, unique in the file)."""
        wanted = {str(row.get("id")) for row in rows}
        lines: dict[str, int] = {}
        try:
            for number, row in self._numbered_rows():
                if str(row["id"]) in wanted:
                    lines[str(row["id"])] = number
                    if len(lines) == len(wanted):
                        break
        except ValueError:  # a bad line past the rows asked about (rows() stops before it)
            pass
        path, plain = self._file(), Task.origins(self, rows)
        return [f"{path}:{lines[str(row.get('id'))]} ({where})" if str(row.get("id")) in lines else where
                for row, where in zip(rows, plain)]

    def _numbered_rows(self) -> Iterator[tuple[int, dict]]:
        """``(line, row)`` in file order, each row with its id: its own, or ``PREFIX-LINE``.

        Ids must be unique: a row is stored and resumed by its id, so a second row
        with the first one's id would be scored against the first one's gold.
        """
        path = self._file()
        prefix = self._id_prefix(path)
        seen: dict[str, int] = {}
        for number, row, error in read_jsonl(path, required=("question",)):
            if error:
                raise ValueError(f"{path}:{number}: {error}; fix the line or remove it")
            row_id = row.get("id", f"{prefix}-{number}")
            if isinstance(row_id, bool) or not isinstance(row_id, (str, int)) or row_id == "":
                raise ValueError(f"{path}:{number}: id {row_id!r} is not a non-empty string or an integer; "
                                 "fix it or drop the id field (the row is then named by its line)")
            first = seen.setdefault(str(row_id), number)
            if first != number:
                generated = "" if "id" in row else f" (line {number} has no id, so it is named {prefix}-{number})"
                raise ValueError(f"{path}: id {str(row_id)!r} on lines {first} and {number}{generated}; "
                                 "ids must be unique: rename one or drop the id field")
            yield number, {**row, "id": row_id}

    def _id_prefix(self, path: Path) -> str:
        return self.id_prefix or path.stem

    @property
    def offers_abstention(self) -> bool:
        """True when any row of the file is ``answerable: false``."""
        path = self._file()
        stat = path.stat()
        return _has_unanswerable_rows(str(path.resolve()), stat.st_mtime_ns, stat.st_size)

    def _file(self) -> Path:
        path = Path(self.path)
        if not path.is_file():
            raise ValueError(f"task file {str(path)!r} does not exist; pass the path of a JSONL file")
        return path


@functools.lru_cache(maxsize=32)
def _has_unanswerable_rows(path: str, mtime_ns: int, size: int) -> bool:
    """One pass over a task file (cached by its path, mtime and size: a rewrite is noticed)."""
    return any(row is not None and row.get("answerable", True) is False for _, row, _ in read_jsonl(Path(path)))


GSM8K_DIR = Path(__file__).resolve().parent / "data" / "gsm8k"  # the shipped copy; its README says whence
GSM8K_SPLITS = ("test", "train")


@dataclass(frozen=True)
class GSM8KTask(JsonlTask):
    """GSM8K (Cobbe et al. 2021): grade-school word problems, gold after ``####``.

    Rows come from the copy shipped in ``rlcot/data/gsm8k`` (``split``: test, 1,319 rows,
    or train, 7,473), from a user's file (``--data``), or from a hub dataset
    (``hub_id=openai/gsm8k``) where one is reachable. A row's id is ``gsm8k-STEM-LINE``
    for a file (the shipped ones are ``test.jsonl`` and ``train.jsonl``) and
    ``gsm8k-SPLIT-INDEX`` (from 1) on the hub: line n of the published split gets the
    same id whichever copy it is read from, and ids enter the keys of stored sweep rows.
    """

    name: str = "gsm8k"
    description: str = "GSM8K word problems (the shipped test/train split, a JSONL file, or the hub)"
    verifier: str = "math"
    path: str = ""
    hub_id: str = ""  # e.g. openai/gsm8k: read the split from the hub instead of the shipped copy
    split: str = "test"
    # "what percent" questions have bare golds ("25"): an answer "25%" is right
    verifier_options: dict[str, Any] = field(default_factory=lambda: {"lenient_percent": True}, hash=False)

    def __post_init__(self):
        if self.path and self.hub_id:
            raise ValueError(f"both a file ({self.path!r}) and hub_id={self.hub_id!r} give GSM8K's rows; keep one")
        if not (self.path or self.hub_id) and self.split not in GSM8K_SPLITS:
            raise ValueError(f"split={self.split!r} is not shipped; choose {' or '.join(GSM8K_SPLITS)}, "
                             "or pass your own file with --data")

    @property
    def offers_abstention(self) -> bool:
        return not self.hub_id and JsonlTask.offers_abstention.fget(self)

    def rows(self, n: int, seed: int = 0) -> list[dict]:
        return self._hub_rows(n) if self.hub_id else JsonlTask.rows(self, n, seed)

    def origins(self, rows: Sequence[dict]) -> list[str]:
        return Task.origins(self, rows) if self.hub_id else JsonlTask.origins(self, rows)

    def _file(self) -> Path:
        if self.path:
            return JsonlTask._file(self)
        path = GSM8K_DIR / f"{self.split}.jsonl"
        if not path.is_file():
            raise ValueError(f"the shipped GSM8K {self.split} split {str(path)!r} is missing (an incomplete "
                             "install?); reinstall rlcot, or pass the split's JSONL file with --data")
        return path

    def _id_prefix(self, path: Path) -> str:
        return f"gsm8k-{path.stem}"  # ids name the split's file, so train and test rows never share one

    def _hub_rows(self, n: int) -> list[dict]:
        _check_n(n)
        try:
            import datasets

            data = datasets.load_dataset(self.hub_id, "main", split=self.split)
        except Exception as err:  # noqa: BLE001 - any hub failure gets the same advice
            raise ValueError(
                f"cannot load {self.hub_id!r} from the hub ({err.__class__.__name__}); drop hub_id to read the "
                f"{self.split} split shipped with rlcot, or pass a local file with --data"
            ) from None
        return [{**data[i], "id": f"gsm8k-{self.split}-{i + 1}"} for i in range(min(n, len(data)))]


# ---------------------------------------------------------------------- puzzles

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
        _check_n(n)
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


TASKS: dict[str, Task] = {
    "arith": ArithTask(),
    "gsm8k": GSM8KTask(),
    "sudoku": SudokuTask(),
    "crossword": CrosswordTask(),
}


def get_task(name: str, data: str | None = None, verifier: str | None = None, options: dict | None = None,
             **more_options) -> Task:
    """A task by name; ``jsonl:PATH`` (or ``data=``) reads rows from a file.

    ``options`` (or keyword arguments) set task fields (``unanswerable=0.2``, ``size=9``,
    ``verifier_options={...}``). A new ``verifier`` drops the task's verifier options,
    which were meant for its own verifier. ``get_task(**task.spec())`` rebuilds a task.
    """
    options = {**(options or {}), **more_options}
    if name.startswith("jsonl:"):
        task: Task = JsonlTask(path=name[len("jsonl:") :], verifier=verifier or "math")
    elif name in TASKS:
        task = TASKS[name]
        if data is not None:
            if not isinstance(task, JsonlTask):
                raise ValueError(f"task {name!r} is generated, not read from a file; drop --data")
            task = replace(task, path=data)
    else:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)} or jsonl:PATH")
    if verifier is not None and verifier != task.verifier:
        task = replace(task, verifier=verifier, verifier_options={})
    unknown = [key for key in options if key not in task.__dataclass_fields__]
    if unknown:
        raise ValueError(f"task {name!r} has no option(s) {', '.join(unknown)}")
    return replace(task, **options) if options else task
