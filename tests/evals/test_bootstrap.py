"""Problem-bootstrap intervals of the fits, on synthetic per-problem sweeps."""

from __future__ import annotations

import numpy as np
import pytest

from rlcot.evals.bootstrap import bootstrap_fit
from rlcot.evals.fits import fit_power_law, fit_sigmoid
from tests.evals.synthetic import SIGMOID, sigmoid


def per_problem_sweep(n_problems=200, seed=0):
    """0/1 correctness of each problem at budgets 2**4 .. 2**16, from the true sigmoid."""
    t = np.arange(4, 17.0)
    rng = np.random.default_rng(seed)
    return 2**t, (rng.random((n_problems, t.size)) < sigmoid(t, **SIGMOID)).astype(float)


def test_bootstrap_is_reproducible_by_seed_and_covers_the_truth():
    x, table = per_problem_sweep()
    first = bootstrap_fit(fit_sigmoid, x, table, n_boot=30, seed=7)
    again = bootstrap_fit(fit_sigmoid, x, table, n_boot=30, seed=7)
    other = bootstrap_fit(fit_sigmoid, x, table, n_boot=30, seed=8)
    assert first.converged, first.message
    assert first.intervals == again.intervals
    assert first.intervals != other.intervals
    assert first.fit.stderr_source == "bootstrap"
    assert first.fit.params == fit_sigmoid(x, table.mean(axis=0)).params
    for name in ("floor", "ceiling", "midpoint"):
        low, high = first.intervals[name]
        assert low < first.fit.params[name] < high
        assert low - 0.05 <= SIGMOID[name] <= high + 0.05, name


def test_bootstrap_passes_fit_options_through():
    x, table = per_problem_sweep()
    table = np.column_stack([np.zeros(table.shape[0]), table])
    x = np.concatenate([[0.0], x])
    result = bootstrap_fit(fit_sigmoid, x, table, n_boot=5, seed=0, drop_nonpositive=True)
    assert result.converged, result.message
    assert result.fit.n_points == x.size - 1


def test_bootstrap_says_so_when_the_fits_fail():
    x = np.geomspace(64, 32768, 8)
    table = np.full((20, x.size), 2.0)  # every problem has the same constant loss
    result = bootstrap_fit(fit_power_law, x, table, n_boot=10, seed=0)
    assert not result.converged
    assert result.n_failed == 10
    assert "did not converge" in result.message
    assert all(np.isnan(bound) for interval in result.intervals.values() for bound in interval)


def test_bootstrap_rejects_a_table_of_the_wrong_shape():
    with pytest.raises(ValueError, match="problems, points"):
        bootstrap_fit(fit_sigmoid, [1, 2, 4], np.zeros((5, 4)))
