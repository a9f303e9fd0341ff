"""Outcome and calibration metrics of the hedge/abstain scheme.

Pure functions over lists and numpy arrays (stdlib and numpy only, no I/O), beside the
estimators of ``rlcot.evals.metrics``.

**Outcomes and calibration** for the hedge/abstain scheme (``rlcot.verifiers.hedging``):
outcome rates, agreement-based confidence (the fraction of a problem's samples that
gave the same answer, usable when there are several samples per problem), expected
calibration error (Guo et al. 2017, "On Calibration of Modern Neural Networks"),
Brier score, and the risk-coverage curve with its area (Geifman & El-Yaniv 2017,
"Selective Classification for Deep Neural Networks").
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from rlcot.verifiers.base import OUTCOMES

from .metrics import _bool_vector, _count, _float_vector, _same_length


# ----------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class OutcomeRates:
    """Rates over n samples of the hedge/abstain scheme's outcomes.

    ``coverage``: answered (correct or wrong) / n. ``selective_accuracy``: correct /
    answered, NaN when nothing was answered. ``accuracy``: correct / n. ``hedge_rate``:
    hedged / n over all samples. ``mean_score``: mean of the per-sample scores.
    """

    coverage: float
    selective_accuracy: float
    accuracy: float
    abstain_rate: float
    unparsed_rate: float
    hedge_rate: float
    mean_score: float
    n: int


def outcome_rates(outcomes: Sequence[str], hedged: Sequence[bool], scores: Sequence[float]) -> OutcomeRates:
    """Coverage, selective accuracy and the other rates of one set of verdicts."""
    n = _same_length(outcomes=outcomes, hedged=hedged, scores=scores)
    unknown = sorted({str(o) for o in outcomes} - set(OUTCOMES))
    if unknown:
        raise ValueError(f"outcomes {unknown} are not among {OUTCOMES}; pass Verdict.outcome strings")
    hedged = _bool_vector(hedged, "hedged")
    scores = _float_vector(scores, "scores")
    counts = Counter(outcomes)
    answered = counts["correct"] + counts["wrong"]
    return OutcomeRates(
        coverage=answered / n,
        selective_accuracy=counts["correct"] / answered if answered else math.nan,
        accuracy=counts["correct"] / n,
        abstain_rate=counts["abstain"] / n,
        unparsed_rate=counts["unparsed"] / n,
        hedge_rate=float(hedged.mean()),
        mean_score=float(scores.mean()),
        n=n,
    )


# ----------------------------------------------------------------------------- calibration


def agreement_confidence(answers: Sequence[Hashable | None]) -> np.ndarray:
    """Per sample: the fraction of this problem's samples that gave the same answer key.

    A confidence that needs no logits: with n samples per problem, an answer most
    samples agree on is more likely right (the premise of self-consistency). A sample
    with no answer (None) has confidence 0.
    """
    if len(answers) == 0:
        raise ValueError("answers is empty; pass one problem's samples")
    votes = Counter(key for key in answers if key is not None)
    return np.array([0.0 if key is None else votes[key] / len(answers) for key in answers])


def _confidence_and_correct(confidence, correct) -> tuple[np.ndarray, np.ndarray]:
    _same_length(confidence=confidence, correct=correct)
    return _float_vector(confidence, "confidence", unit=True), _bool_vector(correct, "correct")


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """ECE (Guo et al. 2017): sum over bins of (bin share) * |accuracy - mean confidence|.

    Equal-width bins on [0, 1], each [i/bins, (i+1)/bins) with the last closed at 1.
    """
    confidence, correct = _confidence_and_correct(confidence, correct)
    bins = _count(bins, "bins")
    if bins < 1:
        raise ValueError("bins=0; pass at least one bin (10 is usual)")
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    size = np.bincount(which, minlength=bins)
    gap = np.bincount(which, weights=correct.astype(float) - confidence, minlength=bins)
    # |sum(correct - confidence)| over a bin = size * |accuracy - mean confidence|
    return float(np.abs(gap).sum() / len(confidence))


def brier_score(confidence: Sequence[float], correct: Sequence[bool]) -> float:
    """Mean squared gap between confidence and correctness (0 best, 1 worst)."""
    confidence, correct = _confidence_and_correct(confidence, correct)
    return float(np.mean((confidence - correct) ** 2))


def risk_coverage(confidence: Sequence[float], correct: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, risk) as the confidence threshold falls, one point per distinct confidence.

    Samples are taken in descending confidence; all samples of equal confidence enter
    together (one step), since no threshold separates them. Coverage is the fraction
    taken, risk the error rate among them.
    """
    confidence, correct = _confidence_and_correct(confidence, correct)
    order = np.argsort(-confidence, kind="stable")
    sorted_confidence = confidence[order]
    errors = np.cumsum(~correct[order])
    # the last index of each run of equal confidence
    ends = np.flatnonzero(np.append(sorted_confidence[1:] != sorted_confidence[:-1], True))
    taken = ends + 1
    return taken / len(confidence), errors[ends] / taken


def aurc(confidence: Sequence[float], correct: Sequence[bool]) -> float:
    """Area under the risk-coverage curve (Geifman & El-Yaniv 2017); lower is better.

    Integration rule: a right-endpoint step sum, sum over steps of (coverage gained)
    * (risk after the step). With distinct confidences this is the usual
    (1/n) * sum over i of risk among the top i; a tied group counts at its joint risk.
    """
    coverage, risk = risk_coverage(confidence, correct)
    return float(np.sum(np.diff(coverage, prepend=0.0) * risk))
