"""``arith``: procedural arithmetic word problems, with unanswerable variants for abstention.

Item ``index`` of seed ``seed`` draws everything from ``random.Random(seed + index)``: a
template (+, -, x, /, two steps), a name, an item and its numbers, so any row can be
rebuilt alone and its id, ``arith-{seed + index}``, says how. Each template also
writes the same question with a needed number missing, and a worked thought (the one
line of reasoning that solves it, for SFT warm-up data). With ``unanswerable > 0`` a
row is swapped, by one more draw from the same generator, for its missing-number
variant: its only right answer is ``\\boxed{IDK}``, which the instruction then offers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .base import Task, check_n, register_task

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
        check_n(n)
        return [self.item(index, seed) for index in range(n)]


register_task(ArithTask())
