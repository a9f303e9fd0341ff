"""The Verdict, the rules every verifier shares, and the answer-section API.

A verifier turns an answer section and a task example into a ``Verdict``. Only the
answer section counts (splitting rules in ``rlcot.verifiers.sections``): an answer that
appears only inside thinking is no answer, and a turn whose thinking never closed has
no answer section at all.

Two entry points, one set of rules. ``verify_answer(section, example)`` takes a
section the caller already split (``None``: thinking never closed), so a caller whose
protocol uses other tags than ``<think>``/``</think>`` splits with its own and still
gets the shared rules. ``verify(completion, example)`` is ``verify_answer`` on
``split_completion(completion).answer`` with the default tags. The batch forms
(``verify_batch``, ``verify_answer_batch``) give the same verdicts, in order; a domain
may override ``verify_answer_batch`` to fan out (math does, over its workers).

The shared rules, in order (``Verifier.verify_answer``):

0. The example is checked first (``check_example``) unless it is marked
   ``answerable: False``: a broken row raises ``ValueError`` on its first call,
   whatever the model wrote, instead of scoring quietly.
1. No answer section, or an empty one: ``unparsed`` (``no_answer``). A section longer
   than the domain's ``answer_section_limit`` (``UNANSWERABLE_SECTION_LIMIT`` on an
   unanswerable row; no honest answer is that long, and reading it costs time outside
   any bound): ``unparsed`` (``too_long``).
2. An explicit abstention token as the final answer (``\\boxed{IDK}``,
   ``\\boxed{\\textbf{IDK}}``, or ``IDK`` alone): ``abstain``.
3. The domain judges the answer section: ``correct``, ``wrong`` or ``unparsed``.
   A row with ``answerable: False`` (a problem missing a needed quantity) is not
   sent to the domain: any boxed answer is ``wrong`` (``unanswerable``).
4. If the domain found no answer and the text abstains ("I don't know"): ``abstain``.
   If it did find one, abstention phrases count as hedging: saying "I don't know"
   next to an answer must not turn a wrong answer into a free 0.
5. ``hedged`` is set from the answer section's hedging lexicon, for every outcome
   but ``abstain``, so it means the same thing in every domain.

Verdicts are plain frozen dataclasses; scores derive from verdicts (``hedging``),
never the other way round. This module imports no torch and nothing from ``rlcot``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from .hedging import DEFAULT_LEXICON, HedgeLexicon
from .sections import CLOSE, OPEN, last_boxed, split_completion

OUTCOMES = ("correct", "wrong", "abstain", "unparsed")
# The limit on the answer section of a row marked ``answerable: False``: the base judges those rows
# alone (a box or an abstention), so its own limit applies, not the domain's.
UNANSWERABLE_SECTION_LIMIT = 100_000


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


class Verifier:
    """Base class: the shared rules in ``verify_answer``; a domain implements ``judge``.

    A domain may also override ``check_example`` (raise ValueError on a row it cannot
    judge) and ``answer_section_limit`` (the longest section worth reading).
    """

    name = "verifier"

    def __init__(self, lexicon: HedgeLexicon = DEFAULT_LEXICON):
        self.lexicon = lexicon

    def judge(self, answer: str, example: Mapping) -> Verdict:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_example(self, example: Mapping) -> None:
        """Raise ValueError, naming the field and the fix, when ``example`` cannot be judged."""

    def answer_section_limit(self, example: Mapping) -> int | None:
        """Longer answer sections are ``unparsed`` (``too_long``) unread; None: no limit."""
        return None

    def verify(self, completion: str, example: Mapping) -> Verdict:
        """The verdict on a whole assistant turn, split with the default ``<think>`` tags."""
        if not isinstance(completion, str):
            raise TypeError(f"completion must be a str, got {type(completion).__name__}")
        return self.verify_answer(split_completion(completion).answer, example)

    def verify_answer(self, answer_section: str | None, example: Mapping) -> Verdict:
        """The verdict on an answer section the caller split (None: thinking never closed)."""
        _check_arguments(answer_section, example)
        answerable = _answerable(example)
        if answerable:
            self.check_example(example)
        if answer_section is None or not answer_section.strip():
            return Verdict("unparsed", reason="no_answer")
        limit = self.answer_section_limit(example) if answerable else UNANSWERABLE_SECTION_LIMIT
        if limit is not None and len(answer_section) > limit:
            return Verdict("unparsed", reason="too_long", details={"chars": len(answer_section), "limit": limit})
        if self.lexicon.abstain_token(answer_section):
            return Verdict("abstain", reason="abstained")
        verdict = self.judge(answer_section, example) if answerable else self._judge_unanswerable(answer_section)
        if verdict.outcome == "unparsed" and self.lexicon.abstains(answer_section):
            return Verdict("abstain", reason="abstained")
        hedged = self.lexicon.hedges(answer_section) or self.lexicon.abstains(answer_section)
        return replace(verdict, hedged=hedged)

    @staticmethod
    def _judge_unanswerable(answer: str) -> Verdict:
        """A problem missing a needed quantity: every answer is wrong; only abstaining is not."""
        boxed = last_boxed(answer)
        if boxed is None:
            return Verdict("unparsed", reason="no_answer")
        return Verdict("wrong", answer=boxed, reason="unanswerable")

    def verify_batch(self, completions: Sequence[str], examples: Sequence[Mapping]) -> list[Verdict]:
        """``verify`` on each pair, through ``verify_answer_batch``; results in order."""
        _check_lengths(completions, examples, "completions")
        for completion in completions:
            if not isinstance(completion, str):
                raise TypeError(f"completions must be str, got a {type(completion).__name__}")
        return self.verify_answer_batch([split_completion(c).answer for c in completions], examples)

    def verify_answer_batch(self, sections: Sequence[str | None], examples: Sequence[Mapping]) -> list[Verdict]:
        """``verify_answer`` on each pair; results in order. Domains may fan this out."""
        _check_lengths(sections, examples, "answer sections")
        return [self.verify_answer(section, example) for section, example in zip(sections, examples)]


def _check_arguments(answer_section, example) -> None:
    if answer_section is not None and not isinstance(answer_section, str):
        raise TypeError(f"answer_section must be a str or None, got {type(answer_section).__name__}")
    if not isinstance(example, Mapping):
        raise TypeError(f"example must be a mapping (one dataset row), got {type(example).__name__}")


def _answerable(example: Mapping) -> bool:
    """False for a row marked ``answerable: False``; ValueError for a value that is not a bool."""
    answerable = example.get("answerable")
    if answerable is not None and not isinstance(answerable, bool):
        raise ValueError(f"example answerable={answerable!r}; set it to True or False (or leave it out)")
    return answerable is not False  # None: the column exists for other rows only (datasets fills it in)


def _check_lengths(items: Sequence, examples: Sequence, what: str) -> None:
    if len(items) != len(examples):
        raise ValueError(f"{len(items)} {what} but {len(examples)} examples; pass one example each")


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


class DuckTypedVerifier(Verifier):
    """A user's verifier object that is not a ``Verifier``, given the whole verifier API.

    Each method goes to the object when it has one. Otherwise ``verify_answer(None)``
    is ``unparsed`` (``no_answer``) without asking it, and ``verify_answer(section)``
    asks ``obj.verify("<think></think>" + section)``, which the split rules read back
    as exactly ``section`` whatever it holds (a bare ``"</think>" + section`` would not:
    a ``<think>`` inside the section would open a thinking section of its own).
    The object's own rules decide everything else.
    """

    def __init__(self, target, name: str | None = None):
        super().__init__(getattr(target, "lexicon", DEFAULT_LEXICON))
        self.target = target
        self.name = getattr(target, "name", None) or name or type(target).__name__

    def verify(self, completion: str, example: Mapping) -> Verdict:
        return self.target.verify(completion, example)

    def verify_answer(self, answer_section: str | None, example: Mapping) -> Verdict:
        if hasattr(self.target, "verify_answer"):
            return self.target.verify_answer(answer_section, example)
        _check_arguments(answer_section, example)
        if answer_section is None:
            return Verdict("unparsed", reason="no_answer")
        return self.target.verify(OPEN + CLOSE + answer_section, example)

    def verify_batch(self, completions: Sequence[str], examples: Sequence[Mapping]) -> list[Verdict]:
        if hasattr(self.target, "verify_batch"):
            return self.target.verify_batch(completions, examples)
        _check_lengths(completions, examples, "completions")
        return [self.target.verify(c, e) for c, e in zip(completions, examples)]

    def verify_answer_batch(self, sections: Sequence[str | None], examples: Sequence[Mapping]) -> list[Verdict]:
        if hasattr(self.target, "verify_answer_batch"):
            return self.target.verify_answer_batch(sections, examples)
        return super().verify_answer_batch(sections, examples)
