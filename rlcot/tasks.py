"""Tasks: a dataset builder, an answer cue for budget forcing, and (later) a verifier.

Every procedural item is seeded as ``seed + index`` (reasoning-gym's convention), so
any row can be rebuilt alone and a dataset of n rows is a prefix of one of n + 1.
A row is a plain dict with at least ``id``, ``question`` and ``answer``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from .generation.base import GenerationRequest
from .thinking import ThinkingProtocol

MATH_CUE = "The final answer is \\boxed{"


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    answer_cue: str

    def rows(self, n: int, seed: int = 0) -> list[dict]:
        raise NotImplementedError

    def requests(
        self, rows: Sequence[dict], tokenizer, protocol: ThinkingProtocol, seed: int = 0
    ) -> list[GenerationRequest]:
        """One request per row; request i samples with seed ``seed + i``."""
        requests = []
        for index, row in enumerate(rows):
            prompt = protocol.build_prompt(tokenizer, row["question"])
            requests.append(
                GenerationRequest(
                    prompt=prompt,
                    prompt_ids=tokenizer.encode(prompt, add_special_tokens=False),
                    answer_cue=self.answer_cue,
                    seed=seed + index,
                    request_id=row["id"],
                )
            )
        return requests


_NAMES = ("Tom", "Sara", "Ali", "Mei", "Lena", "Omar", "Ravi", "Ana", "Ben", "Zoe")
_ITEMS = ("apples", "marbles", "pencils", "stickers", "books", "coins", "cards", "shells")


def _add(rng: random.Random, name: str, item: str) -> tuple[str, int]:
    a, b = rng.randint(2, 60), rng.randint(2, 60)
    return f"{name} has {a} {item} and buys {b} more. How many {item} does {name} have now?", a + b


def _subtract(rng: random.Random, name: str, item: str) -> tuple[str, int]:
    a = rng.randint(10, 90)
    b = rng.randint(1, a - 1)
    return f"{name} has {a} {item} and gives away {b}. How many {item} does {name} have left?", a - b


def _multiply(rng: random.Random, name: str, item: str) -> tuple[str, int]:
    boxes, each = rng.randint(2, 9), rng.randint(2, 12)
    return f"{name} has {boxes} boxes with {each} {item} in each box. How many {item} does {name} have?", boxes * each


def _divide(rng: random.Random, name: str, item: str) -> tuple[str, int]:
    friends, each = rng.randint(2, 8), rng.randint(2, 10)
    total = friends * each
    return (
        f"{name} shares {total} {item} equally among {friends} friends. How many {item} does each friend get?",
        each,
    )


def _two_step(rng: random.Random, name: str, item: str) -> tuple[str, int]:
    a, b = rng.randint(5, 40), rng.randint(2, 30)
    c = rng.randint(1, a + b - 1)
    return (
        f"{name} has {a} {item}, finds {b} more, then gives {c} to a friend. How many {item} does {name} have now?",
        a + b - c,
    )


_TEMPLATES = (_add, _subtract, _multiply, _divide, _two_step)


@dataclass(frozen=True)
class ArithTask(Task):
    """Small arithmetic word problems with integer answers (+, -, x, /, two steps)."""

    name: str = "arith"
    description: str = "procedural arithmetic word problems with integer answers"
    answer_cue: str = MATH_CUE

    def item(self, index: int, seed: int = 0) -> dict:
        rng = random.Random(seed + index)
        template = _TEMPLATES[rng.randrange(len(_TEMPLATES))]
        question, answer = template(rng, rng.choice(_NAMES), rng.choice(_ITEMS))
        return {"id": f"arith-{seed + index}", "question": question, "answer": str(answer), "kind": template.__name__[1:]}

    def rows(self, n: int, seed: int = 0) -> list[dict]:
        if n < 0:
            raise ValueError(f"n={n} is negative; ask for at least 0 rows")
        return [self.item(index, seed) for index in range(n)]


TASKS: dict[str, Task] = {
    "arith": ArithTask(),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]
