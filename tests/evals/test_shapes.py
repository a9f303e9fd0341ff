"""Scaling-curve shapes (Wei et al. 2022) on synthetic curves with seeded noise."""

from __future__ import annotations

import numpy as np
import pytest

from rlcot.evals.curves import Curve
from rlcot.evals.shapes import SHAPES, classify_curve
from tests.evals.synthetic import sigmoid

T = np.arange(6, 15.0)  # budgets 2**6 .. 2**14: nine doublings
U = (T - T[0]) / (T[-1] - T[0])
NOISE = 0.02

SHAPE_CURVES = {
    "smooth": lambda: 0.1 + 0.6 * U,  # linear in log x
    "flat": lambda: np.full(T.size, 0.25),
    "inverse": lambda: 0.6 - 0.4 * U,
    "emergent": lambda: sigmoid(T, 0.05, 0.65, 11.5, 4.0),  # random until 2**11, then a jump
    "uncorrelated": lambda: 0.3 + 0.3 * np.sin(np.pi * U),  # up, then back down
}


def test_every_label_has_a_synthetic_curve():
    assert sorted(SHAPE_CURVES) == sorted(SHAPES)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("kind", list(SHAPE_CURVES))
def test_each_shape_is_classified_right_under_noise(kind, seed):
    y = SHAPE_CURVES[kind]() + np.random.default_rng(seed).normal(0, NOISE, T.size)
    shape = classify_curve(2**T, y, y_err=NOISE)
    assert shape.label == kind, shape.reason
    assert shape.reason


def test_a_curve_linear_in_x_looks_emergent_in_log_x_and_smooth_in_linear_x():
    x = 2.0 ** np.arange(12)
    y = 0.05 + 0.6 * (x - 1) / (x[-1] - 1) + np.random.default_rng(0).normal(0, 0.005, x.size)
    in_log = classify_curve(x, y, log_x=True)
    in_linear = classify_curve(x, y, log_x=False)
    assert in_log.label == "emergent", in_log.reason
    assert in_linear.label == "smooth", in_linear.reason
    assert in_log.stats["onset_x"] >= 128
    # the rank correlation is the same either way: only where the rise sits on the axis differs
    assert in_log.stats["spearman_rho"] == in_linear.stats["spearman_rho"]
    assert in_log.stats["jump_share"] > in_linear.stats["jump_share"]


@pytest.mark.parametrize("seed", range(5))
def test_a_sudden_breakdown_at_the_largest_budget_is_inverse(seed):
    # steady, then lost at the last point: too few points for a significant rank trend
    y = np.where(T < T[-1], 0.6, 0.1) + np.random.default_rng(seed).normal(0, 0.01, T.size)
    shape = classify_curve(2**T, y)
    assert shape.label == "inverse", shape.reason
    assert shape.stats["onset_x"] == 2 ** T[-2] and shape.stats["spearman_p"] > 0.05


def test_flat_uses_the_absolute_tolerance_without_errors_and_the_noise_with_them():
    y = 0.25 + np.array([0.0, 0.01, -0.005, 0.005, 0.0, 0.01, -0.005, 0.0, 0.01])
    assert classify_curve(2**T, y).label == "flat"  # range 0.015 <= FLAT_ABS_TOL
    assert classify_curve(2**T, y + 0.01 * (T == T[-1]), flat_tol=0.01).label != "flat"
    assert classify_curve(2**T, 0.4 + 0.1 * U).label == "smooth"
    assert classify_curve(2**T, 0.4 + 0.1 * U, y_err=0.03).label == "flat"  # 0.1 <= 5 * 0.03


def test_classify_takes_a_curve_and_reads_its_interval():
    y = 0.4 + 0.1 * U
    curve = Curve("thinking tokens", 2**T, y, lo=y - 1.96 * 0.03, hi=y + 1.96 * 0.03)
    shape = classify_curve(curve)
    assert shape.label == "flat"
    assert shape.stats["flat_tolerance"] == pytest.approx(5 * 0.03)
    assert np.isfinite(shape.stats["breakthroughness"])


def test_classify_sorts_by_x():
    y = SHAPE_CURVES["smooth"]()
    order = np.random.default_rng(0).permutation(T.size)
    assert classify_curve(2**T[order], y[order]).label == "smooth"


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "match"),
    [
        ([1, 2, 4], [0.1, 0.2, 0.3], {}, "at least 4 points"),
        ([0, 2, 4, 8], [0.1, 0.2, 0.3, 0.4], {}, "log_x=False"),
        ([4, 4, 4, 4], [0.1, 0.2, 0.3, 0.4], {}, "all x are equal"),
        ([1, 2, 4, 8], [0.1, 0.2, 0.3, 0.4], {"y_err": [0.1, 0.1]}, "y_err"),
    ],
)
def test_classify_rejects_curves_it_cannot_shape(x, y, kwargs, match):
    with pytest.raises(ValueError, match=match):
        classify_curve(x, y, **kwargs)
