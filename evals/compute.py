"""Think longer or sample more? Accuracy against the tokens a problem costs, over every (budget, k).

Snell et al. 2024 ("Scaling LLM test-time compute optimally can be more effective than
scaling model parameters", arXiv:2408.03314) ask how a fixed amount of test-time compute
is best spent: on one longer chain of thought, or on several samples voted on or checked.
A sweep of budgets x samples answers that for one model with no further generation,
and this module holds its math as pure functions over plain numbers; ``plots`` draws
it and ``analysis`` wires it to a sweep's series.

**Compute of a setting.** Budget B with k samples costs ``k x g(B)`` tokens per problem,
``g(B)`` the mean tokens the model generated per sample at B: its thinking plus its
answer, the tokens it sampled, i.e. decode steps, which dominate the cost of generation.
Not counted, on purpose:

- prompt tokens: one prefill per problem, shared by its k samples (prefix caching in
  vLLM, one prompt cache in the hf backend), the same for every (B, k), so they would
  shift every setting alike and never change which one wins; Snell et al. count
  generated tokens too;
- forced tokens (the end-of-thinking delimiter and answer cue that budget forcing
  writes at the cap, s1's "Wait"): a few tokens per sample that are prefilled, not
  sampled. The stored trace keeps their character spans, not a token count.

A cheap sweep generates once at the largest budget and forks the others from it; the
compute here is what each (B, k) costs run on its own, which is what a deployment that
picks (B, k) pays.

**Accuracy of a setting**: maj@k (majority vote over k samples, no verifier needed: what
a deployment can do) and pass@k (an oracle verifier picks: the ceiling of best-of-k),
each the unbiased estimator of ``metrics`` over all k-subsets of the n samples drawn,
with the paired bootstrap CIs by problem of ``series.at_k_points`` (k = 1, 2, 4, ...
up to n). At k = 1 both are the mean accuracy of one sample: the "think longer" curve.

**The frontier** (compute-optimal, Snell et al.'s term): for each compute level c, the
best accuracy any setting reaches at compute <= c. It is a step function that rises
only at the settings on it, the upper-left envelope of the points: ``frontier``.

**The winner at each compute level.** "Think longer" is k = 1 at any B; "sample more" is
k >= 2 at any B (in practice a smaller B than one sample could afford). At level c each
strategy is represented by its best setting affordable at c (ties in accuracy go to
the cheaper one), and the one with the higher accuracy wins. The answer changes only
where a setting becomes affordable, so ``segments`` cuts the compute axis at the
settings' compute values. Below the cheapest k >= 2 setting only one sample is
affordable: no contest, no segment. Where the caller can pair the two settings by
problem (``paired``), the segment carries the paired bootstrap CI of the difference
(``intervals.bootstrap_difference``) and is ``clear`` only when that interval excludes 0.
The interval is of the pair picked by its point estimates; picking the best of several
noisy settings favours luck a little, so an unclear segment is best read as a tie.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Mapping, Sequence

from .points import Point

THINK, SAMPLE, TIE = "think longer", "sample more", "tie"
METRICS = ("maj@k", "pass@k")  # the strategies compared under each: a vote (no verifier), an oracle pick


@dataclass(frozen=True)
class Setting:
    """One way to spend compute on a problem: k samples at thinking budget B, what it costs and scores."""

    budget: int
    k: int
    compute: float  # tokens generated per problem: k x mean tokens per sample at this budget
    accuracy: float

    @property
    def strategy(self) -> str:
        return THINK if self.k == 1 else SAMPLE


@dataclass(frozen=True)
class Segment:
    """Compute levels [start, end) where one strategy's best affordable setting beats the other's."""

    start: float
    end: float | None  # the next level where something changes; None: beyond the costliest setting
    think: Setting  # the best k = 1 setting affordable here
    sample: Setting  # the best k >= 2 setting affordable here
    winner: str  # THINK, SAMPLE or TIE (equal accuracy)
    lo: float | None = None  # paired CI of sample.accuracy - think.accuracy; None when not measured
    hi: float | None = None

    @property
    def difference(self) -> float:
        return self.sample.accuracy - self.think.accuracy

    @property
    def clear(self) -> bool:
        """A winner the CI supports: the interval of the difference excludes 0 (without one: not a tie)."""
        if self.winner == TIE:
            return False
        if self.lo is None or self.hi is None:
            return True
        return self.lo > 0 or self.hi < 0


def tokens_per_problem(k: int, tokens_per_sample: float) -> float:
    """The compute of k samples at a budget whose samples generate ``tokens_per_sample`` tokens on average."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k!r} is not a sample count; pass an integer >= 1")
    if not (math.isfinite(tokens_per_sample) and tokens_per_sample >= 0):
        raise ValueError(f"tokens_per_sample={tokens_per_sample!r} is not a token count; pass a finite number >= 0")
    return k * float(tokens_per_sample)


def compute_points(points: Iterable[Point], tokens_per_sample: Mapping[int, float]) -> list[Point]:
    """One series' maj@k and pass@k points with x moved from k to the compute of their (budget, k).

    ``tokens_per_sample`` maps each budget to the mean tokens generated per sample there.
    """
    out = []
    for p in points:
        if p.metric not in METRICS or p.k is None or p.budget is None:
            continue
        if p.budget not in tokens_per_sample:
            raise ValueError(f"budget {p.budget} has no tokens per sample (have {sorted(tokens_per_sample)}); "
                             "pass the mean tokens generated at every budget the points carry")
        out.append(replace(p, x=tokens_per_problem(p.k, tokens_per_sample[p.budget])))
    return out


def settings(points: Iterable[Point], metric: str) -> list[Setting]:
    """``compute_points`` of one series and ``metric`` as settings; non-finite ones are left out."""
    return [Setting(p.budget, p.k, p.x, p.y) for p in points
            if p.metric == metric and p.k is not None and p.budget is not None
            and math.isfinite(p.x) and math.isfinite(p.y)]


def _check(settings: Sequence[Setting]) -> None:
    if not settings:
        raise ValueError("no settings; pass at least one (budget, k) with its compute and accuracy")
    for s in settings:
        if not (math.isfinite(s.compute) and math.isfinite(s.accuracy)) or s.compute < 0:
            raise ValueError(f"{s} has a non-finite or negative compute or accuracy; drop it first")


def _better(a: Setting, b: Setting | None) -> bool:
    """``a`` beats ``b``: more accurate, or as accurate and cheaper (then fewer samples, then a smaller budget)."""
    if b is None:
        return True
    if not _same(a.accuracy, b.accuracy):
        return a.accuracy > b.accuracy
    return (a.compute, a.k, a.budget) < (b.compute, b.k, b.budget)


def _same(a: float, b: float) -> bool:
    # estimates are means of the same problems' counts: equal ones may differ in the last bits
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def best_within(settings: Sequence[Setting], compute: float) -> Setting | None:
    """The best setting affordable at ``compute`` tokens per problem (ties to the cheaper); None if none is."""
    best = None
    for s in settings:
        if s.compute <= compute and _better(s, best):
            best = s
    return best


def frontier(settings: Sequence[Setting]) -> list[Setting]:
    """The compute-optimal frontier: each setting that beats every cheaper one, cheapest first.

    Along it compute and accuracy both rise strictly; every setting is matched or beaten
    by a frontier setting that costs no more.
    """
    _check(settings)
    on, best = [], None
    for s in sorted(settings, key=lambda s: (s.compute, -s.accuracy, s.k, s.budget)):
        if best is None or (s.accuracy > best.accuracy and not _same(s.accuracy, best.accuracy)):
            on.append(s)
            best = s
    return on


def segments(settings: Sequence[Setting],
             paired: Callable[[Setting, Setting], tuple[float, float]] | None = None) -> list[Segment]:
    """Which strategy wins at each compute level where both can be afforded (module docstring).

    ``paired(think, sample)`` gives the CI of ``sample.accuracy - think.accuracy`` paired by
    problem. Adjacent levels with the same pair merge into one segment, and once a pair is
    left behind it never returns (each side's best only improves), so it is asked once per pair.
    """
    _check(settings)
    levels = sorted({s.compute for s in settings})
    think_side = [s for s in settings if s.strategy == THINK]
    sample_side = [s for s in settings if s.strategy == SAMPLE]
    out: list[Segment] = []
    for i, level in enumerate(levels):
        think, sample = best_within(think_side, level), best_within(sample_side, level)
        if think is None or sample is None:
            continue
        end = levels[i + 1] if i + 1 < len(levels) else None
        if out and (out[-1].think, out[-1].sample) == (think, sample):
            out[-1] = Segment(out[-1].start, end, think, sample, out[-1].winner, out[-1].lo, out[-1].hi)
            continue
        winner = TIE if _same(think.accuracy, sample.accuracy) else THINK if think.accuracy > sample.accuracy \
            else SAMPLE
        lo, hi = paired(think, sample) if paired is not None else (None, None)
        out.append(Segment(level, end, think, sample, winner, lo, hi))
    return out


def describe(found: Sequence[Segment], unit: str = "tokens") -> str:
    """One line: which strategy wins over which compute range, and where the CI cannot tell them apart."""
    if not found:
        return "no contest: no compute level affords both one sample and several"
    runs: list[list[Segment]] = []
    for segment in found:  # neighbours with the same winner read as one range
        if runs and runs[-1][-1].winner == segment.winner and runs[-1][-1].clear == segment.clear:
            runs[-1].append(segment)
        else:
            runs.append([segment])
    parts = []
    for run in runs:
        start, end = run[0].start, run[-1].end
        where = f"{_n(start)}+ {unit}" if end is None else f"{_n(start)}-{_n(end)} {unit}"
        who = "equal" if run[0].winner == TIE else f"{run[0].winner} wins"
        if run[0].winner != TIE and not run[0].clear:
            who += " (within the 95% CI)"
        parts.append(f"{who} at {where}")
    return "; ".join(parts)


def _n(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.3g}"
