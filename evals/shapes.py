"""Shapes of scaling curves: flat, emergent, inverse, smooth or uncorrelated.

``classify_curve`` sorts a curve into the five scaling shapes used for BIG-bench
tasks after Wei et al. 2022 ("Emergent Abilities of Large Language Models", TMLR)
and Srivastava et al. 2022 ("Beyond the Imitation Game", section "Linearity and
breakthroughness: categorizing scaling behaviors", and appendix B): smooth, flat,
inverse, uncorrelated, emergent. Wei's tally of BIG-bench tasks by shape is roughly
29% smooth, 22% flat, 2% inverse, 13% not correlated and 33% emergent (as quoted;
not re-derived here). The criteria are in ``classify_curve``'s docstring; every
threshold is a named constant below. For a training-step curve, a jump may be the
learning-rate schedule rather than emergence: ``schedule.jumps_at_lr_changes``.

Departure from the papers, and why: BIG-bench's breakthroughness
``B = I(y) / RootMedianSquare(diff(y))`` (appendix B,
``I(y) = sign(argmax - argmin) * (max - min)``) is reported in ``Shape.stats`` but
does not decide the label: it only sees consecutive differences, so it cannot tell
a jump across one doubling from the same jump across half the axis. The label uses
the share of the rise inside a window of the (log) x range instead, which is why
``classify_curve`` depends on ``log_x``: a curve linear in x on a doubling grid puts
most of its rise in the last few doublings and looks emergent in log x.

``y_err`` is one standard error per point; a Curve's 95% interval gives it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .curves import curve_arrays

MIN_CLASSIFY_POINTS = 4
FLAT_NOISE_MULTIPLE = 5.0  # the range of n N(0, s) draws tops 5 s for 1% (n=9), 2% (12), 5% (20)
FLAT_ABS_TOL = 0.02  # in y units (accuracy): two points of accuracy is flat
RHO_MIN = 0.6  # |Spearman rho| of a consistent trend
TREND_ALPHA = 0.05  # and its p-value
JUMP_WINDOW = 0.3  # share of the (log) x range a jump may span (one interval always may)
JUMP_SHARE = 0.6  # share of the total rise that happens inside that window
FLAT_START_SHARE = 0.2  # before the jump, y stays within this share of the rise
MIN_FLAT_SPAN = 0.2  # and that flat start covers at least this share of the x range
HOLD_SHARE = 0.5  # after the jump, y stays this share of the rise above the start

SHAPES = ("flat", "emergent", "inverse", "smooth", "uncorrelated")


@dataclass(frozen=True)
class Shape:
    """A curve's scaling shape, the criterion that decided it, and the numbers behind it."""

    label: str
    reason: str
    stats: dict[str, float]


def classify_curve(x, y=None, y_err=None, log_x: bool = True, flat_tol: float = FLAT_ABS_TOL) -> Shape:
    """Label a curve flat, emergent, inverse, smooth or uncorrelated (Wei et al. 2022).

    ``x`` may be a Curve (its interval gives ``y_err`` unless one is passed). Points
    are sorted by x; ``t = log x`` when ``log_x`` (x must be > 0), else ``t = x``, and
    ``u = (t - t_min) / (t_max - t_min)`` places each point on the axis in [0, 1].
    ``R = max(y) - min(y)`` is the total change. The first rule that holds decides:

    1. **flat**: ``R <= max(FLAT_NOISE_MULTIPLE * median(y_err), flat_tol)``; without
       ``y_err``, ``R <= flat_tol``. The change is within noise.
    2. **emergent**: some pair of points i < j has
       (a) a flat start: ``u[i] >= MIN_FLAT_SPAN``, i >= 1, and
       ``max(y[:i+1]) - min(y[:i+1]) <= FLAT_START_SHARE * R``;
       (b) a jump: ``y[j] - y[i] >= JUMP_SHARE * R`` with ``u[j] - u[i] <= JUMP_WINDOW``
       or j = i + 1 (one interval always counts, however wide);
       (c) a hold: ``min(y[j:]) - max(y[:i+1]) >= HOLD_SHARE * R``.
       Near-random, then most of the rise in a narrow stretch of the axis, and it stays.
       ``stats["onset_x"]`` is x[i] for the last i that still satisfies (a)-(c) with
       that j, and ``stats["jump_end_x"]`` is x[j].
    3. **inverse**: rule 2 holds for ``-y`` (a sudden breakdown), or Spearman's
       ``rho(x, y) <= -RHO_MIN`` with ``p < TREND_ALPHA``.
    4. **smooth**: ``rho >= RHO_MIN`` with ``p < TREND_ALPHA``: a consistent rise that
       rule 2 did not find concentrated.
    5. **uncorrelated**: everything else: it moves beyond noise, but with no consistent
       trend (U shapes, oscillation, noise larger than ``flat_tol``).

    Spearman's rho ranks x, so it is the same in log or linear x; ``log_x`` acts
    through ``u`` in rule 2. ``stats`` also holds BIG-bench's breakthroughness
    (module docstring) and ``jump_share``, the largest ``(y[j] - y[i]) / R`` within
    the window, whatever the label. For a training-step curve, check
    ``jumps_at_lr_changes`` before calling a jump emergence.
    """
    x, y, u, y_err = _shape_inputs(x, y, y_err, log_x)
    R = float(y.max() - y.min())
    tolerance = flat_tol if y_err is None else max(FLAT_NOISE_MULTIPLE * float(np.median(y_err)), flat_tol)
    rho, p = (0.0, 1.0) if R == 0 else map(float, stats.spearmanr(x, y))
    shape_stats = {"n_points": float(x.size), "range": R, "flat_tolerance": tolerance,
                   "spearman_rho": rho, "spearman_p": p, "jump_share": _jump_share(u, y, R),
                   "breakthroughness": _breakthroughness(y)}
    if R <= tolerance:
        return Shape("flat", f"y moves by {R:.3g}, within the noise tolerance {tolerance:.3g}", shape_stats)
    for label, sign in (("emergent", 1.0), ("inverse", -1.0)):  # a sudden rise, or a sudden breakdown
        jump = _breakthrough(u, sign * y, R)
        if jump:
            i, j = jump
            where = {"onset_x": float(x[i]), "jump_end_x": float(x[j])}
            return Shape(label, f"near-flat up to x={x[i]:.4g}, then {abs(y[j] - y[i]) / R:.0%} of the "
                         f"range {'gained' if sign > 0 else 'lost'} by x={x[j]:.4g}, and it holds",
                         {**shape_stats, **where})
    trend = f"Spearman rho = {rho:.2f} (p = {p:.2g})"
    if p < TREND_ALPHA and rho <= -RHO_MIN:
        return Shape("inverse", f"{trend}: y falls as x grows", shape_stats)
    if p < TREND_ALPHA and rho >= RHO_MIN:
        return Shape("smooth", f"{trend}, and the rise is spread over the axis "
                     f"(at most {shape_stats['jump_share']:.0%} inside one window)", shape_stats)
    return Shape("uncorrelated", f"{trend}: y moves by {R:.3g} but with no consistent trend", shape_stats)


def _shape_inputs(x, y, y_err, log_x):
    """classify_curve's inputs checked and sorted by x: (x, y, u in [0, 1], y_err or None)."""
    x, y, curve_err = curve_arrays(x, y, "classify_curve")
    if x.size < MIN_CLASSIFY_POINTS:
        raise ValueError(f"classify_curve needs at least {MIN_CLASSIFY_POINTS} points, got {x.size}; "
                         "a shape needs a sweep, not a pair")
    if log_x and np.any(x <= 0):
        raise ValueError(f"log_x=True needs x > 0, got {int(np.sum(x <= 0))} point(s) with x <= 0; "
                         "drop them (a zero budget), or pass log_x=False")
    if y_err is not None:
        y_err = np.asarray(y_err, dtype=float).ravel()
        if y_err.size not in (1, y.size) or not np.all(np.isfinite(y_err) & (y_err >= 0)):
            raise ValueError(f"y_err needs one finite value >= 0, or one per point ({y.size}); "
                             "leave it None if unknown")
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    t = np.log(x) if log_x else x
    if t[-1] == t[0]:
        raise ValueError(f"all x are equal ({x[0]:.4g}); a shape needs x to vary")
    return x, y, (t - t[0]) / (t[-1] - t[0]), curve_err if y_err is None else y_err


def _breakthrough(u, y, R):
    """(i, j) of a flat start, jump and hold (classify_curve rule 2), or None.

    The first such i is moved on to the last point still in the flat start, so x[i]
    is the onset: the largest x before the jump.
    """
    for i in range(1, y.size - 1):
        if np.ptp(y[: i + 1]) > FLAT_START_SHARE * R:
            return None  # the start only gets less flat as it grows
        for j in range(i + 1, y.size):
            if j > i + 1 and u[j] - u[i] > JUMP_WINDOW:
                break
            if _is_jump(u, y, R, i, j):
                while i + 1 < j and _is_jump(u, y, R, i + 1, j):
                    i += 1
                return i, j
    return None


def _is_jump(u, y, R, i, j) -> bool:
    """classify_curve rule 2 (a), (b) and (c) for the pair i < j."""
    start = y[: i + 1]
    return (i >= 1 and u[i] >= MIN_FLAT_SPAN and np.ptp(start) <= FLAT_START_SHARE * R
            and (j == i + 1 or u[j] - u[i] <= JUMP_WINDOW)
            and y[j] - y[i] >= JUMP_SHARE * R and y[j:].min() - start.max() >= HOLD_SHARE * R)


def _jump_share(u, y, R) -> float:
    """The largest share of the total change gained inside one JUMP_WINDOW (or interval)."""
    if R == 0:
        return 0.0
    best = 0.0
    for i in range(y.size - 1):
        for j in range(i + 1, y.size):
            if j > i + 1 and u[j] - u[i] > JUMP_WINDOW:
                break
            best = max(best, (y[j] - y[i]) / R)
    return float(best)


def _breakthroughness(y) -> float:
    """BIG-bench's B = I(y) / RootMedianSquare(diff y) (Srivastava et al. 2022, app. B)."""
    improvement = np.sign(np.argmax(y) - np.argmin(y)) * (y.max() - y.min())
    root_median_square = np.sqrt(np.median(np.diff(y) ** 2))
    if root_median_square == 0:
        return math.inf * np.sign(improvement) if improvement else 0.0
    return float(improvement / root_median_square)
