"""The task contract, the registry and ``get_task``; each task family lives in its own module.

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

A prompt may state a thinking budget (``Task.prompt(..., stated_budget=B)``): the
instruction then ends with ``BUDGET_SENTENCE`` ("Think for at most B tokens."), as L1
states its length in the prompt (Aggarwal & Welleck 2025, arXiv:2503.04697), so a
model trained on such prompts (``thinking.state_cap`` in a recipe) can be asked for a
budget rather than forced to it (``rlcot sweep --stated``). Without a budget the prompt
is byte-identical to one built before budgets could be stated.

``Task.spec()`` is a plain dict that ``get_task(**spec)`` turns back into the same
task; runs record it, so a file of traces can be rescored with its own task. Stored
sweeps hash it into their keys, so its shape must not change.

``TASKS`` maps a name to a task with its default options; each family's module ends
by registering its tasks (``register_task``), as reasoning-gym's do. File tasks
(``jsonl:PATH``, ``hf:NAME``) are built per source rather than registered, so ``spec``
and ``get_task`` import them where they need them: a module-level import would be a
loop, since ``rlcot.tasks.jsonl`` builds on ``Task``. A file-backed task
(``file_backed``) has a fixed set of rows, which sweeps take whole by default; a
generated one needs a count.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping, Sequence

from rlcot.generation.base import GenerationRequest, derive_seed
from rlcot.generation.budget import cue_opens_braces
from rlcot.thinking import DEFAULT_INSTRUCTION, ThinkingProtocol
from rlcot.verifiers.sections import last_boxed

MATH_CUE = "The final answer is \\boxed{"
ABSTAIN_HINT = " If the problem cannot be answered, write \\boxed{IDK}."
BUDGET_SENTENCE = " Think for at most {budget} tokens."  # appended to the instruction of a prompt stating a budget


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

    @property
    def file_backed(self) -> bool:
        """Whether the rows are read (a file, a dataset): then a sweep takes all of them by default.

        A generated task has no end, so a sweep or ``rlcot generate`` needs a count for it.
        """
        return False

    def map_columns(self, row: Mapping, mapped_ok: bool = False) -> dict:
        """``row`` in the shape the task reads (``question``, ``answer``, ``id``); a file task maps its columns."""
        return dict(row)

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
        from .hf_dataset import HfDatasetTask
        from .jsonl import JsonlTask

        base = TASKS.get(self.name) or (HfDatasetTask() if self.name == "hf" else JsonlTask())
        fixed = {"name", "description", "path", "id_prefix", "source"}
        options = {f.name: getattr(self, f.name) for f in fields(self)
                   if f.name not in fixed and getattr(self, f.name) != getattr(base, f.name, None)}
        path = getattr(self, "path", "")
        if self.name in ("jsonl", "hf"):  # built per source: the name says which (jsonl:PATH, hf:NAME)
            return {"name": f"{self.name}:{path or getattr(self, 'source', '')}", "data": None, "options": options}
        return {"name": self.name, "data": path or None, "options": options}

    def question(self, row: dict) -> str:
        return row["question"]

    def origins(self, rows: Sequence[dict]) -> list[str]:
        """Where each row comes from, for messages about it: ``id 'x'`` here (a file task adds ``FILE:LINE``)."""
        return [f"id {row.get('id')!r}" for row in rows]

    def gold_answer(self, row: dict) -> str:
        """The answer section a perfect model writes for ``row`` (contract tests, SFT data).

        The gold is a plain value, GSM8K's ``#### x``, or a MATH solution, whose boxes the
        math verifier reads as the gold (``rlcot.verifiers.math_answers.gold_parts``); boxing the
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
            from rlcot.verifiers.math_answers import gold_answer

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

    def prompt(self, row: dict, tokenizer, protocol: ThinkingProtocol, stated_budget: int | None = None) -> str:
        """The prompt text for ``row`` (chat template, instruction, pre-filled ``<think>``), untokenised.

        The protocol's instruction, left at its default, becomes this task's (for a model
        whose template thinks natively, only its answer format: ``rlcot.thinking``). A
        ``stated_budget`` B appends ``BUDGET_SENTENCE`` to the instruction; a protocol
        that adds no instruction (``instruct=False``: a model trained to think) gets
        the sentence alone after the question.
        """
        if protocol.instruct and protocol.instruction == DEFAULT_INSTRUCTION:
            protocol = replace(protocol, instruction=self.full_instruction)
        if stated_budget is not None:
            protocol = stating(protocol, stated_budget)
        return protocol.build_prompt(tokenizer, self.question(row))

    def requests(
        self, rows: Sequence[dict], tokenizer, protocol: ThinkingProtocol, seed: int = 0, samples: int = 1,
        stated_budget: int | None = None,
    ) -> list[GenerationRequest]:
        """``samples`` requests per row, row-major; sample j of a row draws with ``derive_seed(seed, id, j)``.

        ``stated_budget``: each prompt states it (``prompt``); the seeds are the same as without.
        """
        if samples < 1:
            raise ValueError(f"samples={samples} must be >= 1")
        requests = []
        for row in rows:
            prompt = self.prompt(row, tokenizer, protocol, stated_budget)
            prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
            for sample in range(samples):
                requests.append(GenerationRequest(
                    prompt=prompt, prompt_ids=prompt_ids, answer_cue=self.answer_cue,
                    seed=derive_seed(seed, row["id"], sample), request_id=row["id"], sample=sample,
                ))
        return requests


def stating(protocol: ThinkingProtocol, budget: int) -> ThinkingProtocol:
    """``protocol`` with ``BUDGET_SENTENCE`` for ``budget`` thinking tokens ending its instruction."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ValueError(f"stated_budget={budget!r} is not a whole number of thinking tokens >= 0")
    sentence = BUDGET_SENTENCE.format(budget=budget)
    if not protocol.instruct:
        return replace(protocol, instruct=True, instruction=sentence.strip())
    return replace(protocol, instruction=protocol.instruction + sentence)


def check_n(n: int) -> None:
    """Reject a negative row count (every family's ``rows`` starts here)."""
    if n < 0:
        raise ValueError(f"n={n} is negative; ask for at least 0 rows")


TASKS: dict[str, Task] = {}  # filled by each family's module, in the order rlcot.tasks imports them


def register_task(task: Task) -> None:
    """Make ``task`` (with its default options) what ``get_task(task.name)`` starts from."""
    if task.name in TASKS:
        raise ValueError(f"a task named {task.name!r} is already registered; give the new one another name")
    TASKS[task.name] = task


def get_task(name: str, data: str | None = None, verifier: str | None = None, options: dict | None = None,
             **more_options) -> Task:
    """A task by name; ``jsonl:PATH`` (or ``data=``) reads rows from a file, ``hf:NAME`` a dataset (``hf_dataset``).

    ``options`` (or keyword arguments) set task fields (``unanswerable=0.2``, ``size=9``,
    ``verifier_options={...}``). A new ``verifier`` drops the task's verifier options,
    which were meant for its own verifier. ``get_task(**task.spec())`` rebuilds a task.
    """
    from .hf_dataset import HfDatasetTask, parse_source
    from .jsonl import JsonlTask

    options = {**(options or {}), **more_options}
    if name.startswith("jsonl:"):
        task: Task = JsonlTask(path=name[len("jsonl:") :], verifier=verifier or "math")
    elif name.startswith("hf:"):
        if data is not None:
            raise ValueError(f"task {name!r} names its dataset; drop --data")
        parse_source(name[len("hf:") :])  # a name naming nothing is said now, before any loading
        task = HfDatasetTask(source=name[len("hf:") :], verifier=verifier or "math")
    elif name in TASKS:
        task = TASKS[name]
        if data is not None:
            if not isinstance(task, JsonlTask):
                raise ValueError(f"task {name!r} is generated, not read from a file; drop --data")
            task = replace(task, path=data)
    else:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}, jsonl:PATH or hf:NAME "
                         "(hf:NAME@SPLIT, hf:NAME:CONFIG@SPLIT: a Hugging Face dataset, or a local parquet/JSON/CSV "
                         "file or dataset directory)")
    if verifier is not None and verifier != task.verifier:
        task = replace(task, verifier=verifier, verifier_options={})
    unknown = [key for key in options if key not in task.__dataclass_fields__]
    if unknown:
        raise ValueError(f"task {name!r} has no option(s) {', '.join(unknown)}")
    return replace(task, **options) if options else task
