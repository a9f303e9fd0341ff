"""Hedging and abstention: detection in the answer section, and the scoring scheme.

A policy should be rewarded for knowing what it does not know. The scheme (from the
seed talk; numbers configurable) scores a verdict:

    correct, unhedged  +1      correct, hedged  +0.5      abstain ("I don't know")  0
    wrong, hedged      -2      wrong, unhedged  -4        unparsed: as wrong, unless set

With probability p of being right, answering unhedged is worth p*1 + (1-p)*(-4) =
5p - 4, hedged 0.5p - 2(1-p) = 2.5p - 2, abstaining 0. So answering at all beats
abstaining only above p = 0.8 (hedged: also 0.8), and unhedged beats hedged above
p = 0.8: ``HedgeScheme.thresholds()`` derives these from any numbers, so a user can
see what behaviour their scheme rewards.

Detection reads only the answer section (``rlcot.verifiers.base`` passes it), lower-cased,
with word boundaries, so "maybe" hedges but "Maybelline" does not. Departure from
reasoning-gym: no partial credit and no score floor leak into this scheme.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field, fields

from .sections import last_boxed, strip_text_commands

ABSTAIN_PHRASES = (
    "i don't know",
    "i do not know",
    "i dont know",
    "i cannot determine",
    "i can't determine",
    "cannot be determined",
    "can't be determined",
    "not enough information",
    "insufficient information",
    "i am unable to answer",
    "i'm unable to answer",
    "i cannot answer",
    "i can't answer",
)
ABSTAIN_TOKENS = ("IDK", "I don't know", "unknown")  # boxed: \boxed{IDK}

HEDGE_PHRASES = (
    "i think",
    "i believe",
    "i guess",
    "probably",
    "possibly",
    "perhaps",
    "maybe",
    "likely",
    "not sure",
    "not certain",
    "unsure",
    "my best guess",
    "it seems",
    "it might be",
    "it could be",
    "approximately",
    "roughly",
    "i suspect",
)

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


def _pattern(phrases) -> re.Pattern:
    alternatives = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
    return re.compile(rf"(?<![\w]){'(?:' + alternatives + ')'}(?![\w])")


def _normalise(text: str) -> str:
    return " ".join(text.translate(_APOSTROPHES).lower().split())


def _bare(text: str) -> str:
    """``text`` as a candidate abstain token: no LaTeX text wrappers, no surrounding punctuation."""
    return _normalise(strip_text_commands(text)).strip(" .!*_`$\"'")


@dataclass(frozen=True)
class HedgeLexicon:
    abstain_phrases: tuple[str, ...] = ABSTAIN_PHRASES
    abstain_tokens: tuple[str, ...] = ABSTAIN_TOKENS
    hedge_phrases: tuple[str, ...] = HEDGE_PHRASES
    _abstain: re.Pattern = field(init=False, repr=False, compare=False)
    _hedge: re.Pattern = field(init=False, repr=False, compare=False)
    _tokens: frozenset = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_abstain", _pattern([_normalise(p) for p in self.abstain_phrases]))
        object.__setattr__(self, "_hedge", _pattern([_normalise(p) for p in self.hedge_phrases]))
        object.__setattr__(self, "_tokens", frozenset(_bare(t) for t in self.abstain_tokens))

    def abstains(self, answer: str) -> bool:
        return bool(self._abstain.search(_normalise(answer)))

    def hedges(self, answer: str) -> bool:
        return bool(self._hedge.search(_normalise(answer)))

    def abstain_token(self, answer: str) -> bool:
        """An abstain token as the final answer: the last box's content (``\\boxed{\\textbf{IDK}}``),
        or, with no box, the whole answer section (``IDK.``). Text wrappers, case, spacing
        and surrounding punctuation or Markdown emphasis do not matter."""
        boxed = last_boxed(answer)
        return _bare(answer if boxed is None else boxed) in self._tokens


DEFAULT_LEXICON = HedgeLexicon()


@dataclass(frozen=True)
class HedgeScheme:
    correct: float = 1.0
    correct_hedged: float = 0.5
    abstain: float = 0.0
    wrong_hedged: float = -2.0
    wrong: float = -4.0
    unparsed: float | None = None  # None: scored as wrong (hedged or not)

    def __post_init__(self):
        # NaN or an infinity would flow through every mean: "mean score +nan", NaN in the results' JSON.
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value is None and spec.name == "unparsed":
                continue
            example = (f"write e.g. '{spec.name}: {spec.default}'" if spec.default is not None
                       else f"write e.g. '{spec.name}: -4.0', or leave it out to score it as wrong")
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"scheme field {spec.name!r} is {value!r} ({type(value).__name__}), but scheme "
                                 f"values must be numbers; {example}")
            if not math.isfinite(value):
                raise ValueError(f"scheme field {spec.name!r} is {value!r}, but scheme values must be finite; "
                                 f"{example}")

    def score(self, verdict) -> float:
        outcome = verdict.outcome
        if outcome == "abstain":
            return self.abstain
        if outcome == "unparsed" and self.unparsed is not None:
            return self.unparsed
        if outcome == "correct":
            return self.correct_hedged if verdict.hedged else self.correct
        return self.wrong_hedged if verdict.hedged else self.wrong

    def thresholds(self) -> dict[str, float | None]:
        """Probabilities of being right above which each choice beats the other.

        ``answer_over_abstain``: unhedged answering beats abstaining;
        ``hedged_over_abstain``: hedged answering beats abstaining;
        ``unhedged_over_hedged``: answering unhedged beats hedging.
        None where one choice dominates at every probability.
        """
        return {
            "answer_over_abstain": _crossing(self.correct, self.wrong, self.abstain, self.abstain),
            "hedged_over_abstain": _crossing(self.correct_hedged, self.wrong_hedged, self.abstain, self.abstain),
            "unhedged_over_hedged": _crossing(self.correct, self.wrong, self.correct_hedged, self.wrong_hedged),
        }


BINARY = HedgeScheme(correct=1.0, correct_hedged=1.0, abstain=0.0, wrong_hedged=0.0, wrong=0.0)


def _crossing(right_a: float, wrong_a: float, right_b: float, wrong_b: float) -> float | None:
    """p where p*right_a + (1-p)*wrong_a = p*right_b + (1-p)*wrong_b, if it lies in [0, 1]."""
    slope = (right_a - wrong_a) - (right_b - wrong_b)
    if slope == 0:
        return None
    p = (wrong_b - wrong_a) / slope
    return p if 0 <= p <= 1 else None
