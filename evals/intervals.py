"""Paired bootstrap intervals for inference-time compute sweeps.

Pure functions over numpy arrays (stdlib and numpy only, no I/O); the estimators whose
per-problem values they resample are in ``rlcot.evals.metrics``.

**Paired bootstrap by problem** (Efron & Tibshirani 1993, percentile interval):
points on a sweep share traces and problems, so they are not independent. Problems
are resampled with replacement with the *same* indices for every column, so the
interval of a difference between two budgets (or before vs after training over the
same problems) is that of a paired statistic, usually much narrower than the naive one.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .metrics import _count


# Bootstrap replicates are drawn in chunks of about this many (replicate, problem) cells.
_BOOTSTRAP_CHUNK_CELLS = 2_000_000


# ----------------------------------------------------------------------------- bootstrap


# eq=False: fields may be arrays, whose == is elementwise and has no single truth value
@dataclass(frozen=True, eq=False)
class Estimate:
    """A point estimate and its percentile interval: floats, or arrays over columns."""

    mean: float | np.ndarray
    lo: float | np.ndarray
    hi: float | np.ndarray
    level: float
    n_boot: int


def _check_bootstrap_args(n_boot, level) -> int:
    n_boot = _count(n_boot, "n_boot")
    if n_boot < 1:
        raise ValueError("n_boot=0; pass at least 1 replicate (2000 is usual for a 95% interval)")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level={level!r} is outside (0, 1); pass e.g. 0.95 for a 95% interval")
    return n_boot


def _resampled_means(table: np.ndarray, n_boot: int, seed) -> np.ndarray:
    """[n_boot, columns] nan-means over problems resampled with one index set for all columns."""
    n_problems, n_columns = table.shape
    observed = ~np.isnan(table)
    filled = np.where(observed, table, 0.0)
    means = np.empty((n_boot, n_columns))
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CHUNK_CELLS // n_problems)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        rows = rng.integers(0, n_problems, size=(stop - start, n_problems))
        # Column by column, each reduced the same way: a column that copies another
        # gets bit-identical replicates, whatever its neighbours hold.
        for column in range(n_columns):
            sums = filled[:, column][rows].sum(axis=1)
            counts = observed[:, column][rows].sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                means[start:stop, column] = sums / counts
    return means


def bootstrap_ci(values, n_boot: int = 2000, level: float = 0.95, seed=0) -> Estimate:
    """Mean over problems and its paired percentile bootstrap interval, per column.

    ``values``: [problems] or [problems, ...] (e.g. [problems, budgets] of
    per-problem mean correctness). NaN marks a missing cell: means are nan-means over
    the problems present, and a replicate that drew no present problem for a column
    is left out of that column's quantiles. Every replicate resamples problems with
    replacement using the same indices for all columns (they share traces). Seeded
    with ``numpy.random.default_rng(seed)``: the same seed gives the same bits.
    """
    n_boot = _check_bootstrap_args(n_boot, level)
    values = np.asarray(values, dtype=float)
    if values.ndim == 0 or values.shape[0] == 0:
        raise ValueError(f"values has shape {values.shape}; pass [problems, ...] with at least one problem")
    table = values.reshape(values.shape[0], -1)
    means = _resampled_means(table, n_boot, seed)
    tail = (1.0 - float(level)) / 2.0
    with warnings.catch_warnings():
        # an all-missing column is NaN by design, not worth a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        point = np.nanmean(table, axis=0)
        lo = np.nanquantile(means, tail, axis=0)
        hi = np.nanquantile(means, 1.0 - tail, axis=0)
    shape = values.shape[1:]
    if not shape:
        return Estimate(float(point[0]), float(lo[0]), float(hi[0]), float(level), n_boot)
    return Estimate(point.reshape(shape), lo.reshape(shape), hi.reshape(shape), float(level), n_boot)


def bootstrap_difference(a, b, n_boot: int = 2000, level: float = 0.95, seed=0) -> Estimate:
    """Mean of a - b over problems and its paired bootstrap interval.

    ``a`` and ``b`` are per-problem values over the same problems in the same order
    (two models, two budgets, before and after training): the difference is taken
    per problem, then bootstrapped, so problem difficulty cancels. A cell missing
    (NaN) in either is missing in the difference.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"a has shape {a.shape} and b {b.shape}; pass paired values over the same problems")
    return bootstrap_ci(a - b, n_boot=n_boot, level=level, seed=seed)
