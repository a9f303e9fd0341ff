"""The Verdict, the answer section, and the rules every verifier shares.

A verifier turns a whole assistant turn (``<think>...</think>answer``) and a task
example into a ``Verdict``. Only the answer section counts (rules in
``rlcot.thinking.split_completion``): an answer that appears only inside thinking is
no answer, and a turn whose thinking never closed has no answer section at all.

``Verifier.verify`` applies the shared rules, then calls the domain's ``judge``:

1. No answer section, or an empty one: ``unparsed`` (``no_answer``).
2. An explicit abstention token (``\\boxed{IDK}``): ``abstain``.
3. The domain judges the answer section: ``correct``, ``wrong`` or ``unparsed``.
   A row with ``answerable: False`` (a problem missing a needed quantity) is not
   sent to the domain: any boxed answer is ``wrong`` (``unanswerable``).
4. If the domain found no answer and the text abstains ("I don't know"): ``abstain``.
   If it did find one, abstention phrases count as hedging: saying "I don't know"
   next to an answer must not turn a wrong answer into a free 0.
5. ``hedged`` is set from the answer section's hedging lexicon, for every outcome
   but ``abstain``, so it means the same thing in every domain.

Verdicts are plain frozen dataclasses; scores derive from verdicts (``hedging``),
never the other way round. This module imports no torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from rlcot.thinking import split_completion

from .hedging import DEFAULT_LEXICON, HedgeLexicon

OUTCOMES = ("correct", "wrong", "abstain", "unparsed")


@dataclass(frozen=True)
class Verdict:
    outcome: str
    hedged: bool = False
    answer: str | None = None
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome {self.outcome!r} is not one of {', '.join(OUTCOMES)}")

    def to_dict(self) -> dict:
        return {"outcome": self.outcome, "hedged": self.hedged, "answer": self.answer,
                "reason": self.reason, "details": dict(self.details)}


def answer_section(completion: str) -> str | None:
    """The part of a completion a verifier may read; None when thinking never closed."""
    return split_completion(completion).answer


_BOX_OR_BRACES = re.compile(r"\\(?:boxed|fbox)\{|\{+|\}+")


def boxed_contents(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` (and ``\\fbox{...}``) in order, nested braces handled.

    An unclosed box is not returned. One pass with a stack of open boxes, so the time
    is linear: rescanning from each ``\\boxed{`` is quadratic on nested unclosed boxes
    (28 KB of them took 20 s), and this runs in-process, outside any worker's bound.
    """
    found, boxes, depth = [], [], 0  # boxes: (command start, content start, depth just inside the box)
    for match in _BOX_OR_BRACES.finditer(text):
        token = match.group()
        if token[0] == "}":
            closed = depth - min(len(token), depth)  # closers beyond depth 0 match nothing
            while boxes and boxes[-1][2] > closed:
                command, content, level = boxes.pop()
                found.append((command, text[content : match.start() + depth - level]))
            depth = closed
        elif token[0] == "{":
            depth += len(token)
        else:
            depth += 1
            boxes.append((match.start(), match.end(), depth))
    return [content for _, content in sorted(found)]


def last_boxed(text: str) -> str | None:
    boxes = boxed_contents(text)
    return boxes[-1] if boxes else None


class Verifier:
    """Base class: shared rules in ``verify``; a domain implements ``judge``."""

    name = "verifier"

    def __init__(self, lexicon: HedgeLexicon = DEFAULT_LEXICON):
        self.lexicon = lexicon

    def judge(self, answer: str, example: Mapping) -> Verdict:  # pragma: no cover - abstract
        raise NotImplementedError

    def verify(self, completion: str, example: Mapping) -> Verdict:
        if not isinstance(completion, str):
            raise TypeError(f"completion must be a str, got {type(completion).__name__}")
        answer = answer_section(completion)
        if answer is None or not answer.strip():
            return Verdict("unparsed", reason="no_answer")
        if self.lexicon.abstain_token(answer):
            return Verdict("abstain", answer=None, reason="abstained")
        if example.get("answerable", True) is False:
            verdict = self._judge_unanswerable(answer)
        else:
            verdict = self.judge(answer, example)
        if verdict.outcome == "unparsed" and self.lexicon.abstains(answer):
            return Verdict("abstain", reason="abstained")
        hedged = self.lexicon.hedges(answer) or self.lexicon.abstains(answer)
        return replace(verdict, hedged=hedged)

    @staticmethod
    def _judge_unanswerable(answer: str) -> Verdict:
        """A problem missing a needed quantity: every answer is wrong; only abstaining is not."""
        boxed = last_boxed(answer)
        if boxed is None:
            return Verdict("unparsed", reason="no_answer")
        return Verdict("wrong", answer=boxed, reason="unanswerable")

    def verify_batch(self, completions: Sequence[str], examples: Sequence[Mapping]) -> list[Verdict]:
        if len(completions) != len(examples):
            raise ValueError(f"{len(completions)} completions but {len(examples)} examples; pass one example each")
        return [self.verify(c, e) for c, e in zip(completions, examples)]


class FunctionVerifier(Verifier):
    """A user's plain function as a verifier.

    ``f(answer_section, example)`` returns a Verdict, a bool (correct or wrong), or
    None when it finds no answer (``unparsed``, so an "I don't know" abstains).
    """

    def __init__(self, function, name: str | None = None, lexicon: HedgeLexicon = DEFAULT_LEXICON):
        super().__init__(lexicon)
        self.function = function
        self.name = name or getattr(function, "__name__", "custom")

    def judge(self, answer: str, example: Mapping) -> Verdict:
        result = self.function(answer, example)
        if result is None:
            return Verdict("unparsed", reason="no_answer")
        if isinstance(result, Verdict):
            return result
        if isinstance(result, bool):
            return Verdict("correct" if result else "wrong", answer=answer.strip())
        raise TypeError(f"verifier {self.name!r} returned {type(result).__name__}; return a Verdict, bool or None")
