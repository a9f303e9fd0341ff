"""Problem-bootstrap intervals for the fits of ``fits``.

``bootstrap_fit`` resamples problems, not points, because the problems are the
random draw: the points of one curve share them and are not independent. Each
resample draws rows of a [problems, points] table with replacement from a seeded
generator, refits the mean curve, and the percentiles of the refits that converged
give the intervals. When the point fit or most resamples fail, the result says so
(``MAX_FAILED_SHARE``) instead of reporting intervals nobody can trust.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from .curves import checked_vector
from .fits import Fit

MAX_FAILED_SHARE = 0.5  # bootstrap: more failed resamples than this and the result says so


@dataclass(frozen=True)
class BootstrapFit:
    """A point fit with problem-bootstrap percentile intervals.

    ``fit`` is the fit of the mean curve; when it converged and most resamples did,
    its ``stderr`` is the bootstrap standard deviation (``stderr_source="bootstrap"``).
    ``intervals`` come from the resamples that converged only, so they are conditional
    on convergence; ``converged`` is False, and ``message`` says so, when the point fit
    failed or more than ``MAX_FAILED_SHARE`` of the resamples did.
    """

    fit: Fit
    intervals: dict[str, tuple[float, float]]
    level: float
    n_boot: int
    n_failed: int
    converged: bool
    message: str


def bootstrap_fit(fit_fn: Callable[..., Fit], x, per_problem_y, n_boot: int = 500, seed: int = 0,
                  level: float = 0.95, **fit_kwargs) -> BootstrapFit:
    """Refit ``fit_fn(x, mean curve, **fit_kwargs)`` on problem-resampled mean curves.

    ``per_problem_y`` is [problems, points]: one row per problem (its accuracy at each
    x, say). Each resample draws problems with replacement from
    ``numpy.random.default_rng(seed)``, so a seed gives the same intervals every time.
    """
    x = checked_vector(x, "x")
    table = np.asarray(per_problem_y, dtype=float)
    if table.ndim != 2 or table.shape[1] != x.size:
        raise ValueError(f"per_problem_y must be [problems, points] with {x.size} points, got shape "
                         f"{table.shape}; pass one row per problem")
    if table.shape[0] < 2 or not np.all(np.isfinite(table)):
        raise ValueError(f"per_problem_y needs >= 2 problems and finite values, got {table.shape[0]} "
                         "problem(s); drop or fill missing cells first")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot must be an integer >= 1, got {n_boot!r}; 500 is typical")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}; 0.95 gives a 95% interval")
    point = fit_fn(x, table.mean(axis=0), **fit_kwargs)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {name: [] for name in point.params}
    n_failed = 0
    for _ in range(n_boot):
        rows = rng.integers(0, table.shape[0], size=table.shape[0])
        refit = fit_fn(x, table[rows].mean(axis=0), **fit_kwargs)
        if not refit.converged:
            n_failed += 1
            continue
        for name in draws:
            draws[name].append(refit.params[name])
    return _summarise_bootstrap(point, draws, level, n_boot, n_failed)


def _summarise_bootstrap(point: Fit, draws, level, n_boot, n_failed) -> BootstrapFit:
    tail = 100 * (1 - level) / 2
    n_ok = n_boot - n_failed
    intervals = {name: ((float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))) if v
                        else (math.nan, math.nan)) for name, v in draws.items()}
    problems = []
    if not point.converged:
        problems.append(f"the point fit did not converge: {point.message}")
    if n_failed > MAX_FAILED_SHARE * n_boot:
        problems.append(f"{n_failed} of {n_boot} resamples did not converge; the intervals come from "
                        f"the {n_ok} that did and are not trustworthy")
    fit = point
    if not problems and n_ok >= 2:
        stderr = {name: float(np.std(v, ddof=1)) for name, v in draws.items()}
        fit = replace(point, stderr=stderr, stderr_source="bootstrap")
    note = f"{n_failed} of {n_boot} resamples did not converge" if n_failed and not problems else ""
    message = "; ".join(part for part in (*problems, note) if part)
    return BootstrapFit(fit=fit, intervals=intervals, level=level, n_boot=n_boot, n_failed=n_failed,
                        converged=not problems, message=message)
