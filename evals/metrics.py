"""Estimators behind inference-time compute sweeps: accuracy against thinking tokens.

Pure functions over lists and numpy arrays (stdlib and numpy only, no I/O), in four
groups; the paired bootstrap intervals are in ``rlcot.evals.intervals`` and the
outcome and calibration metrics of the hedge scheme in ``rlcot.evals.outcomes``.
Every estimator over k-subsets is exact over all C(n, k) subsets of one
problem's n samples, never "the first k", so a sweep with n = 64 samples per problem
gives smooth, unbiased curves for every k <= 64 from one set of traces.

**pass@k** (Chen et al. 2021, "Evaluating Large Language Models Trained on Code",
eq. 1): ``1 - C(n-c, k) / C(n, k)`` in its numerically stable product form.

**maj@k** (self-consistency, Wang et al. 2023): the expected correctness of the
majority answer of a uniformly random k-subset. Rules, chosen so that a sample which
produced no answer can neither win nor help a wrong answer win:

- ``None`` (no parsed answer) never votes; a subset with no votes at all scores 0.
- Samples with the same answer key are one candidate; a candidate is correct if its
  samples are (they must agree: the key *is* the answer, so a disagreement means the
  caller keyed answers wrongly, and it raises ``ValueError`` naming the key).
- Ties among the top-voted candidates are broken uniformly at random and counted at
  their expected value: the fraction of tied candidates that are correct.

Enumerating subsets is exponential, so ``maj_at_k`` counts them: a candidate c wins
with j votes when no other candidate has more than j votes; with t others at exactly
j it wins the tie-break with probability 1/(1+t). For each j a dynamic programme over
the candidates able to reach j votes counts the ways by (samples drawn, ties t);
candidates that cannot reach j, and the ``None`` samples, enter as one binomial. Two
candidates with the same vote count are exchangeable, so one programme per distinct
vote count of a correct candidate suffices. Counts such as C(512, 256) ~ 1e152 are
kept finite by weighting a draw of s samples out of m by p^s (1-p)^(m-s) with
p = k/(n+1): every factor becomes a binomial probability (<= 1) and the normaliser
C(n,k) p^k (1-p)^(n-k) is close to its maximum, so nothing overflows for any n. All
terms are non-negative (no cancellation), so results agree with exact
enumeration to ~1e-12 (the rounding of log-factorials near log(512!) ~ 2700). At
n = 512 a problem takes ~0.05 s when one answer key is correct, up to ~1 s in the
worst cases (hundreds of distinct answers, or correct answers spread over many keys
with different vote counts: one programme each).

**best-of-n** (reranking by a score, e.g. a reward model or log-probability): the
expected correctness of the top-scoring sample of a random k-subset, score ties at
their expected value. With scores == correctness it is pass@k.

**s1's metrics** (Muennighoff et al. 2025, "s1: Simple test-time scaling",
arXiv:2501.19393, section 3.2): Control, Scaling and Performance of a budget sweep.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Hashable, Sequence
from fractions import Fraction

import numpy as np


# ----------------------------------------------------------------------------- checks


def _count(value, name: str) -> int:
    """A non-negative integer (Python or numpy), not a bool or a float."""
    if isinstance(value, bool):
        raise TypeError(f"{name}={value!r} is a bool; pass an integer count")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name}={value!r} is not an integer; pass an integer count") from None
    if value < 0:
        raise ValueError(f"{name}={value} is negative; pass a count >= 0")
    return value


def _check_k(k, n: int) -> int:
    k = _count(k, "k")
    if not 1 <= k <= n:
        raise ValueError(f"k={k} is outside 1..n={n}; pick k between 1 and the number of samples")
    return k


def _bool_vector(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} has shape {array.shape}; pass one flat sequence per problem")
    if array.size and array.dtype != bool:
        if not np.isin(array, (0, 1)).all():
            raise ValueError(f"{name} holds values other than True/False/0/1; pass booleans")
    return array.astype(bool)


def _float_vector(values, name: str, *, unit: bool = False) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} has shape {array.shape}; pass a flat sequence")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinity; drop or fill those entries first")
    if unit and ((array < 0) | (array > 1)).any():
        raise ValueError(f"{name} holds values outside [0, 1]; pass probabilities")
    return array


def _same_length(**vectors) -> int:
    lengths = {name: len(vector) for name, vector in vectors.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"lengths differ ({lengths}); pass one entry per sample in each")
    (n,) = set(lengths.values())
    if n == 0:
        raise ValueError(f"{', '.join(lengths)} are empty; pass at least one sample")
    return n


# ----------------------------------------------------------------------------- pass@k


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al. 2021).

    ``1 - C(n-c, k)/C(n, k)`` written as ``1 - prod(1 - k/i, i = n-c+1..n)``: no
    binomial of n = 1000 is ever formed, so it neither overflows nor loses precision.
    """
    n, c = _count(n, "n"), _count(c, "c")
    if c > n:
        raise ValueError(f"c={c} exceeds n={n}; c counts correct samples among the n")
    k = _check_k(k, n)
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


# ----------------------------------------------------------------------------- maj@k


def _candidates(answers: Sequence[Hashable | None], correct: np.ndarray) -> dict:
    """Answer key -> [votes, correct]; raises on a key whose samples disagree."""
    candidates: dict = {}
    for key, is_correct in zip(answers, correct):
        if key is None:
            continue
        try:
            known = key in candidates
        except TypeError:
            raise TypeError(f"answer key {key!r} is not hashable; pass strings, numbers or tuples") from None
        if not known:
            candidates[key] = [0, bool(is_correct)]
        elif candidates[key][1] != bool(is_correct):
            raise ValueError(
                f"answer key {key!r} is marked both correct and wrong; key samples by their normalised answer"
            )
        candidates[key][0] += 1
    return candidates


class _Binomials:
    """Weighted counts C(m, s) p^s (1-p)^(m-s) as floats, from a log-factorial table."""

    def __init__(self, n: int, k: int):
        # p = k/(n+1) puts the draw of k out of n near the binomial's mode (so the
        # normaliser is not tiny) and keeps 0 < p < 1 for every 1 <= k <= n.
        p = k / (n + 1)
        self.n = n
        self.log_p, self.log_q = math.log(p), math.log1p(-p)
        self.log_factorial = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, n + 1)))))

    def __call__(self, m: int, s: np.ndarray | int) -> np.ndarray:
        s = np.asarray(s)
        inside = (s >= 0) & (s <= m)
        s_ok = np.where(inside, s, 0)
        lf = self.log_factorial
        log_w = lf[m] - lf[s_ok] - lf[m - s_ok] + s_ok * self.log_p + (m - s_ok) * self.log_q
        return np.where(inside, np.exp(log_w), 0.0)


def _tie_table(votes: list[int], j: int, draws: int, weigh: _Binomials) -> np.ndarray:
    """Weighted ways [s, t]: s samples drawn from these candidates, each below j or at j, t at j."""
    max_ties = min(len(votes), draws // j)
    table = np.ones((1, 1))
    for v in votes:
        below = weigh(v, np.arange(min(j, draws + 1)))  # this candidate draws l < j of its v
        at_j = float(weigh(v, j))
        # a rival draws at most j (more would beat c), so only s <= j * (rivals seen) and
        # t <= rivals seen can be non-zero: the table grows into that block
        rows, cols = table.shape
        new = np.zeros((min(draws + 1, rows + j), min(max_ties + 1, cols + 1)))
        if len(below) <= cols:  # fewer shifts than columns: shift-and-add
            for l, weight in enumerate(below):
                span = min(rows, new.shape[0] - l)
                new[l : l + span, :cols] += weight * table[:span]
        else:
            for t in range(cols):
                column = np.convolve(table[:, t], below)[: new.shape[0]]
                new[: len(column), t] = column
        span, tied = min(rows, new.shape[0] - j), min(cols, new.shape[1] - 1)
        if span > 0 and tied > 0:
            new[j : j + span, 1 : 1 + tied] += at_j * table[:span, :tied]
        table = new
    padded = np.zeros((draws + 1, max_ties + 1))
    padded[: table.shape[0], : table.shape[1]] = table
    return padded


def _win_probability(votes: int, others: list[int], nones: int, k: int, weigh: _Binomials) -> float:
    """P(one given candidate with `votes` samples wins the k-subset's vote), ties split evenly."""
    total = 0.0
    for j in range(1, min(votes, k) + 1):
        rivals = [u for u in others if u >= j]
        # candidates that cannot reach j votes only take up draws, like None samples
        bystanders = nones + sum(u for u in others if u < j)
        ties = _tie_table(rivals, j, k - j, weigh)
        rest = weigh(bystanders, np.arange(k - j, -1, -1))  # rest[s] = draws k-j-s of bystanders
        by_ties = rest @ ties
        total += float(weigh(votes, j)) * float(by_ties @ (1.0 / np.arange(1, len(by_ties) + 1)))
    return total / float(weigh(weigh.n, k))  # the weight of all C(n, k) subsets


def maj_at_k(answers: Sequence[Hashable | None], correct: Sequence[bool], k: int) -> float:
    """Expected correctness of the majority vote of a random k-subset of one problem's samples.

    ``answers[i]``: a hashable answer key, or None when sample i has no parsed answer;
    ``correct[i]``: whether sample i is correct. The exact mean over all C(n, k)
    subsets, with the rules of the module docstring: None never votes; no votes
    scores 0; one key is one candidate whose samples must agree on correctness; top
    ties count at the fraction of tied candidates that are correct.
    """
    n = _same_length(answers=answers, correct=correct)
    correct = _bool_vector(correct, "correct")
    k = _check_k(k, n)
    candidates = _candidates(answers, correct)
    nones = n - sum(votes for votes, _ in candidates.values())
    correct_by_votes = Counter(votes for votes, ok in candidates.values() if ok)
    if not correct_by_votes:
        return 0.0
    weigh = _Binomials(n, k)
    all_votes = sorted(votes for votes, _ in candidates.values())
    expected = 0.0
    for votes, n_correct in correct_by_votes.items():
        others = list(all_votes)
        others.remove(votes)  # candidates with equal votes are exchangeable: any one stands for all
        expected += n_correct * _win_probability(votes, others, nones, k, weigh)
    return min(expected, 1.0)  # float rounding could exceed 1 by an ulp


# ----------------------------------------------------------------------------- best-of-n


def best_of_n(scores: Sequence[float], correct: Sequence[bool], k: int) -> float:
    """Expected correctness of the top-scoring sample of a random k-subset (exact).

    Samples are grouped by equal score. The top of a subset lies in group G exactly
    when the subset holds none of the A samples scored above G and at least one of
    G's g samples: ``[C(n-A, k) - C(n-A-g, k)] / C(n, k)``. Within G the pick is
    uniform, so it is correct with probability r/g (r correct in G). Integers are
    exact (``math.comb``); one division at the end gives the float.
    """
    n = _same_length(scores=scores, correct=correct)
    scores = _float_vector(scores, "scores")
    correct = _bool_vector(correct, "correct")
    k = _check_k(k, n)
    values, group_of = np.unique(-scores, return_inverse=True)  # ascending in -score: best first
    group_sizes = np.bincount(group_of, minlength=len(values))
    group_correct = np.bincount(group_of, weights=correct, minlength=len(values))
    total, above = Fraction(0), 0
    for size, n_correct in zip(group_sizes.tolist(), group_correct.tolist()):
        if n_correct:
            top_here = math.comb(n - above, k) - math.comb(n - above - size, k)
            total += Fraction(int(n_correct) * top_here, size)
        above += size
    return float(total / math.comb(n, k))


# ----------------------------------------------------------------------------- s1 metrics


def control(thinking_tokens: Sequence[float], a_min: float | None = None, a_max: float | None = None) -> float:
    """s1's Control: the fraction of evaluations whose thinking tokens lie in [a_min, a_max].

    ``None`` leaves that side unbounded. s1 (section 3.2) asks how well a method keeps
    to the budget it was given; 1 means every run stayed within it.
    """
    tokens = _float_vector(thinking_tokens, "thinking_tokens")
    if tokens.size == 0:
        raise ValueError("thinking_tokens is empty; pass one count per evaluation")
    if a_min is not None and a_max is not None and a_min > a_max:
        raise ValueError(f"a_min={a_min} exceeds a_max={a_max}; swap them or drop one bound")
    inside = np.ones(tokens.shape, dtype=bool)
    if a_min is not None:
        inside &= tokens >= a_min
    if a_max is not None:
        inside &= tokens <= a_max
    return float(inside.mean())


def scaling(compute: Sequence[float], accuracy: Sequence[float]) -> float:
    """s1's Scaling: the mean slope (f(b) - f(a)) / (b - a) over all pairs of sweep points.

    The slope between two measured points of the piecewise-linear accuracy curve, as
    s1 defines it (section 3.2), averaged over every pair; pairs with equal compute
    have no slope and are left out of the average. Positive: more compute helps.
    """
    _same_length(compute=compute, accuracy=accuracy)
    compute = _float_vector(compute, "compute")
    accuracy = _float_vector(accuracy, "accuracy")
    first, second = np.triu_indices(len(compute), k=1)
    run = compute[second] - compute[first]
    keep = run != 0
    if not keep.any():
        distinct = np.unique(compute)
        raise ValueError(f"compute has fewer than two distinct values ({distinct}); Scaling needs a sweep over budgets")
    rise = accuracy[second] - accuracy[first]
    return float(np.mean(rise[keep] / run[keep]))


def performance(accuracy: Sequence[float]) -> float:
    """s1's Performance: the best accuracy the sweep reached."""
    accuracy = _float_vector(accuracy, "accuracy")
    if accuracy.size == 0:
        raise ValueError("accuracy is empty; pass one accuracy per sweep point")
    return float(accuracy.max())
