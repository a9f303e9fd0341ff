"""``chain``: multi-step arithmetic chains, problems whose thinking grows with the problem (issue 18).

An arith problem takes one or two operations, so a model's thought can stay one line
long however hard the question looks. A chain takes ``k`` operations applied in order
to a running value, each needing the result of the one before: no step can be skipped
or done out of order, so a thought that gets the answer has to carry about ``k``
intermediate results, and the thinking a problem needs grows with ``k``. The seed
example of the issue, "the square of ((8-2)*3+4)^3 / 8", is a six-step chain
(8 - 2, * 3, + 4, cubed, / 8, squared); here a step is one of +, -, * and exact /
on small integers, so each step is one fact a small model can do and the only thing
that grows is how many of them there are. That makes ``steps`` a dial for budget
sweeps: accuracy at a thinking budget against the number of steps.

Item ``index`` of seed ``seed`` draws everything from ``random.Random(seed + index)``,
as arith does, so any row can be rebuilt alone and its id, ``chain-{seed + index}``,
says how. The draws come in a fixed order: ``k`` (uniform over the ``steps`` range),
the start and each step, the form, a name and an item, then (only with
``unanswerable > 0``) whether the row loses a number and which. The form, name and
item are drawn whatever the options, so a row with ``form="word"`` is the same chain
as the row of ``form="mixed"`` that drew the word form, and an unanswerable row's
answerable twin is the row built with ``unanswerable=0``.

Every intermediate value is a whole number from 1 to ``max_value`` (999 by default): +
and - take 1 to 50 (never reaching 0 or passing ``max_value``), * takes 2 to 9, / takes a
divisor from 2 to 12, so every division is exact. A step's operation is drawn uniformly
from those possible at the running value. ``max_value`` is the difficulty of one step:
at 99 every step is two-digit arithmetic a 135M model can learn to do reliably, so what
is left to get wrong is carrying the chain, and how much thinking that takes.

Two surface forms (``form``): ``expression``, a bare expression to compute
("Compute ((8 - 2) * 3 + 4) / 2."), the running value always on the left and
parenthesised wherever precedence would otherwise change the order, so the usual
reading of the expression is the chain's order; and ``word``, a word problem that
narrates the same chain a step at a time with a name and items from arith's lists;
``mixed`` (the default) draws one per row. Multiplication is written ``*``
everywhere: in expressions, and in the worked thought of both forms, one line a
step ("8 - 2 = 6.", "6 * 3 = 18.", ...), so an SFT warm-up on these rows teaches a
thought whose length is the chain's.

With ``unanswerable > 0`` a row is, by one more draw, swapped for a variant with one
of its numbers missing ("a number" in an expression, "some" in a word problem): its
``answer`` is None and ``answerable`` False, and since every step changes the value,
no missing number leaves the answer known; the only right answer is ``\\boxed{IDK}``,
which the instruction then offers. ``ChainTask`` builds on ``ArithTask`` for what the
two share: the ``unanswerable`` option and its check, the abstention offer, the rows
and the worked thought read from each row.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

from .arith import _ITEMS, _NAMES, ArithTask
from .base import register_task

FORMS = ("expression", "word", "mixed")
MISSING_THOUGHT = "One of the numbers the chain needs is not given, so the answer cannot be known."

MAX_VALUE = 999  # the default largest value a chain passes through
_START = (2, 30)  # the range of a chain's first number


def _operations(value: int, top: int) -> dict[str, range | tuple[int, ...]]:
    """The operations possible at ``value``, each with the operands it may take there, staying within 1..``top``."""
    possible: dict[str, range | tuple[int, ...]] = {}
    if value < top:
        possible["+"] = range(1, min(50, top - value) + 1)
    if value > 1:
        possible["-"] = range(1, min(50, value - 1) + 1)
    if value * 2 <= top:
        possible["*"] = range(2, min(9, top // value) + 1)
    divisors = tuple(d for d in range(2, 13) if value % d == 0)
    if divisors:
        possible["/"] = divisors
    return possible


def _apply(value: int, op: str, operand: int) -> int:
    return {"+": value + operand, "-": value - operand, "*": value * operand, "/": value // operand}[op]


def _draw_chain(rng: random.Random, k: int, top: int) -> tuple[int, list[tuple[str, int]]]:
    """A start value and ``k`` steps ``(op, operand)``, every value on the way a whole number in 1..``top``."""
    value = start = rng.randint(*_START)
    steps = []
    for _ in range(k):
        possible = _operations(value, top)
        op = rng.choice(sorted(possible))
        steps.append((op, rng.choice(possible[op])))
        value = _apply(value, op, steps[-1][1])
    return start, steps


def _expression(numbers: list[str], ops: list[str]) -> str:
    """``numbers[0] ops[0] numbers[1] ...`` applied left to right, with brackets only where precedence needs them."""
    text, top = numbers[0], ""
    for op, number in zip(ops, numbers[1:]):
        if op in "*/" and top in ("+", "-"):
            text = f"({text})"
        text, top = f"{text} {op} {number}", op
    return text


# What each step of a word problem says, with {n} its number ("some" where it is missing).
_WORDS = {
    "+": "Then {name} gets {n} more.",
    "-": "Then {name} gives {n} away.",
    "*": "Then each of {name}'s {item} is swapped for {n} new ones.",
    "/": "Then {name} splits the {item} into {n} equal piles and keeps one pile.",
}


def _word_problem(numbers: list[str], ops: list[str], name: str, item: str) -> str:
    lines = [f"{name} has {numbers[0]} {item}."]
    lines += [_WORDS[op].format(name=name, item=item, n=number) for op, number in zip(ops, numbers[1:])]
    return " ".join(lines + [f"How many {item} does {name} have now?"])


def _worked(start: int, steps: list[tuple[str, int]]) -> tuple[str, int]:
    """The worked thought, one line a step (``8 - 2 = 6.``, then ``6 * 3 = 18.``, ...), and the answer."""
    lines, value = [], start
    for op, operand in steps:
        result = _apply(value, op, operand)
        lines.append(f"{value} {op} {operand} = {result}.")
        value = result
    return "\n".join(lines), value


def _steps_range(steps) -> tuple[int, int]:
    """``steps`` as ``(low, high)``: an int k is ``(k, k)``; a list from YAML or JSON becomes a tuple."""
    pair = list(steps) if isinstance(steps, (list, tuple)) else [steps, steps]
    shown = pair if isinstance(steps, (list, tuple)) else repr(steps)
    if len(pair) != 2 or not all(isinstance(x, Integral) and not isinstance(x, bool) for x in pair):
        raise ValueError(f"steps={shown} is not a step count or a [low, high] range of them; e.g. steps=[1, 6]")
    low, high = int(pair[0]), int(pair[1])
    if low > high:
        raise ValueError(f"steps={shown} is reversed; write steps=[{high}, {low}]")
    if low < 1:
        raise ValueError(f"steps={shown} allows chains of {low} steps; every chain takes at least 1, "
                         f"e.g. steps=[1, {max(high, 1)}]")
    return low, high


@dataclass(frozen=True)
class ChainTask(ArithTask):
    """Arithmetic chains of ``k`` steps, ``k`` drawn per row from ``steps`` (inclusive), as expressions or stories.

    ``steps``: an int k or a ``[low, high]`` range, kept as a tuple so the task stays
    hashable; ``form``: ``expression``, ``word`` or ``mixed`` (one per row);
    ``unanswerable``: the fraction of rows with a needed number missing (as arith's);
    ``max_value``: the largest value a chain passes through (at least the largest start, 30).
    """

    name: str = "chain"
    description: str = "multi-step arithmetic chains (+, -, *, exact /) as expressions or word problems"
    steps: tuple[int, int] = (1, 6)
    form: str = "mixed"
    max_value: int = MAX_VALUE
    # the question is an expression: a boxed copy of it is not an answer (math-verify would work it out)
    verifier_options: dict[str, Any] = field(default_factory=lambda: {"numbers_only": True}, hash=False)

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "steps", _steps_range(self.steps))
        if self.form not in FORMS:
            raise ValueError(f"form={self.form!r} is not a form; choose {', '.join(FORMS[:-1])} or {FORMS[-1]}")
        if not isinstance(self.max_value, Integral) or isinstance(self.max_value, bool) or self.max_value < _START[1]:
            raise ValueError(f"max_value={self.max_value!r} is below a chain's largest start, {_START[1]}; "
                             f"choose a whole number >= {_START[1]}, e.g. max_value=99")

    def spec(self) -> dict:
        """As ``Task.spec``, with ``steps`` a list: the spec is plain JSON, the same when read back from a run."""
        spec = super().spec()
        if "steps" in spec["options"]:
            spec["options"]["steps"] = list(self.steps)
        return spec

    def item(self, index: int, seed: int = 0) -> dict:
        rng = random.Random(seed + index)
        k = rng.randint(*self.steps)
        start, chain = _draw_chain(rng, k, int(self.max_value))
        drawn_form, name, item = rng.choice(FORMS[:2]), rng.choice(_NAMES), rng.choice(_ITEMS)
        form = drawn_form if self.form == "mixed" else self.form
        numbers = [str(start)] + [str(operand) for _, operand in chain]
        ops = [op for op, _ in chain]
        thought, answer = _worked(start, chain)
        answerable = not (self.unanswerable and rng.random() < self.unanswerable)
        if not answerable:
            numbers[rng.randrange(len(numbers))] = "a number" if form == "expression" else "some"
            thought, answer = MISSING_THOUGHT, None
        question = (f"Compute {_expression(numbers, ops)}." if form == "expression"
                    else _word_problem(numbers, ops, name, item))
        return {"id": f"chain-{seed + index}", "question": question, "answer": None if answer is None else str(answer),
                "steps": k, "form": form, "answerable": answerable, "thought": thought}


register_task(ChainTask())
