"""Scaling-curve fits (sigmoid, power law) on synthetic curves with seeded noise."""

from __future__ import annotations

import numpy as np
import pytest

from rlcot.evals.curves import Curve
from rlcot.evals.fits import fit_power_law, fit_sigmoid
from tests.evals.synthetic import SIGMOID, sigmoid

POWER_LAW = {"E": 1.5, "A": 20.0, "alpha": 0.4}


def sigmoid_sweep(noise, seed=0, step=1.0):
    """Accuracy at budgets 2**4 .. 2**16 tokens (log2 step ``step``), noise sd ``noise``."""
    t = np.arange(4, 16 + step / 2, step)
    rng = np.random.default_rng(seed)
    y = np.clip(sigmoid(t, **SIGMOID) + rng.normal(0, noise, t.size), 0, 1)
    return 2**t, y


def power_law_sweep(noise, seed=1):
    x = np.geomspace(64, 32768, 12)
    rng = np.random.default_rng(seed)
    return x, POWER_LAW["E"] + POWER_LAW["A"] * x ** -POWER_LAW["alpha"] + rng.normal(0, noise, x.size)


# ---------------------------------------------------------------- fits recover what made the data


@pytest.mark.parametrize("seed", range(3))
def test_sigmoid_in_log_x_recovers_known_parameters_within_a_few_stderr(seed):
    x, y = sigmoid_sweep(noise=0.02, seed=seed)
    fit = fit_sigmoid(x, y, sigma=0.02)
    assert fit.converged, fit.message
    assert fit.kind == "sigmoid" and fit.log_x and fit.n_points == x.size
    for name, true in SIGMOID.items():
        assert np.isfinite(fit.stderr[name]) and fit.stderr[name] > 0
        assert abs(fit.params[name] - true) <= 4 * fit.stderr[name], name
    assert fit.params["midpoint_x"] == pytest.approx(1024, rel=0.15)
    assert fit.residual_rmse < 0.04


def test_sigmoid_predict_follows_the_true_curve():
    x, y = sigmoid_sweep(noise=0.01)
    fit = fit_sigmoid(x, y, sigma=0.01)
    grid = np.geomspace(32, 32768, 30)
    np.testing.assert_allclose(fit.predict(grid), sigmoid(np.log2(grid), **SIGMOID), atol=0.03)


def test_sigmoid_stderr_shrinks_with_less_noise_and_with_more_points():
    noisy = fit_sigmoid(*sigmoid_sweep(noise=0.03))
    quiet = fit_sigmoid(*sigmoid_sweep(noise=0.005))
    dense = fit_sigmoid(*sigmoid_sweep(noise=0.03, step=0.25))
    assert noisy.converged and quiet.converged and dense.converged
    for name in SIGMOID:
        assert quiet.stderr[name] < noisy.stderr[name] / 2, name
        assert dense.stderr[name] < noisy.stderr[name], name


def test_falling_accuracy_fits_with_floor_below_ceiling_and_negative_slope():
    t = np.arange(4, 17.0)
    y = sigmoid(t, 0.2, 0.7, 9.0, -1.2) + np.random.default_rng(0).normal(0, 0.01, t.size)
    fit = fit_sigmoid(2**t, y, sigma=0.01)
    assert fit.converged, fit.message
    assert fit.params["floor"] == pytest.approx(0.2, abs=0.03)
    assert fit.params["ceiling"] == pytest.approx(0.7, abs=0.03)
    assert fit.params["slope"] == pytest.approx(-1.2, rel=0.2)


def test_sigmoid_in_linear_x_has_no_midpoint_x():
    steps = np.linspace(0, 1000, 21)
    y = sigmoid(steps, 0.1, 0.8, 400.0, 0.02)
    fit = fit_sigmoid(steps, y + np.random.default_rng(0).normal(0, 0.01, steps.size), log_x=False)
    assert fit.converged, fit.message
    assert "midpoint_x" not in fit.params
    assert fit.params["midpoint"] == pytest.approx(400, abs=20)


def test_power_law_recovers_known_parameters_within_a_few_stderr():
    x, y = power_law_sweep(noise=0.02)
    fit = fit_power_law(x, y, sigma=0.02)
    assert fit.converged, fit.message
    assert fit.kind == "power_law"
    for name, true in POWER_LAW.items():
        assert np.isfinite(fit.stderr[name]) and fit.stderr[name] > 0
        assert abs(fit.params[name] - true) <= 4 * fit.stderr[name], name
        assert fit.params[name] == pytest.approx(true, rel=0.1), name
    np.testing.assert_allclose(fit.predict(x), y, atol=0.08)


def test_power_law_stderr_shrinks_with_less_noise():
    noisy = fit_power_law(*power_law_sweep(noise=0.04))
    quiet = fit_power_law(*power_law_sweep(noise=0.01))
    for name in POWER_LAW:
        assert quiet.stderr[name] < noisy.stderr[name] / 2, name


def test_fits_take_a_curve():
    x, y = sigmoid_sweep(noise=0.01)
    from_curve = fit_sigmoid(Curve("thinking tokens", x, y), sigma=0.01)
    assert from_curve.params == fit_sigmoid(x, y, sigma=0.01).params
    with pytest.raises(TypeError, match="not both"):
        fit_sigmoid(Curve("thinking tokens", x, y), y)


# ---------------------------------------------------------------- fits that cannot converge say so


def test_two_points_do_not_converge_and_predict_raises():
    for fit in (fit_sigmoid([64, 128], [0.1, 0.2]), fit_power_law([64, 128], [2.0, 1.5])):
        assert not fit.converged
        assert "at least" in fit.message
        with pytest.raises(ValueError, match="fit did not converge: .*at least"):
            fit.predict([100])


def test_as_many_points_as_parameters_without_sigma_has_no_noise_estimate():
    x, y = sigmoid_sweep(noise=0.0, step=4.0)  # t = 4, 8, 12, 16: four points, four parameters
    fit = fit_sigmoid(x, y)
    assert not fit.converged
    assert "degrees of freedom" in fit.message


def test_constant_y_does_not_converge():
    x = np.geomspace(64, 32768, 10)
    for fit in (fit_power_law(x, np.full(x.size, 2.0)), fit_sigmoid(x, np.full(x.size, 0.3))):
        assert not fit.converged
        assert "constant" in fit.message
        with pytest.raises(ValueError, match="did not converge"):
            fit.predict(x)


def test_power_law_on_a_rising_loss_does_not_converge():
    x = np.geomspace(64, 32768, 10)
    fit = fit_power_law(x, 0.5 + 0.01 * np.sqrt(x))
    assert not fit.converged
    assert "does not fall with x" in fit.message


@pytest.mark.parametrize("seed", range(10))
def test_pure_noise_does_not_converge(seed):
    rng = np.random.default_rng(seed)
    x = 2.0 ** np.arange(12)
    sigmoid_fit = fit_sigmoid(x, 0.5 + rng.normal(0, 0.05, x.size))
    power_fit = fit_power_law(x, 2.0 + rng.normal(0, 0.05, x.size))
    for fit in (sigmoid_fit, power_fit):
        assert not fit.converged
        assert fit.message
        assert all(np.isinf(error) for error in fit.stderr.values())


def test_a_rise_between_two_adjacent_points_leaves_the_slope_unidentified():
    t = np.arange(4, 17.0)
    fit = fit_sigmoid(2**t, np.where(t > 10.5, 0.8, 0.1))
    assert not fit.converged
    assert "slope" in fit.message and "between two adjacent points" in fit.message


# ---------------------------------------------------------------- input errors name the fix


def test_zero_budget_raises_unless_dropped_and_the_drop_is_reported():
    x, y = sigmoid_sweep(noise=0.01)
    x, y = np.concatenate([[0.0], x]), np.concatenate([[0.1], y])
    with pytest.raises(ValueError, match="drop_nonpositive=True"):
        fit_sigmoid(x, y)
    fit = fit_sigmoid(x, y, drop_nonpositive=True)
    assert fit.converged and fit.n_points == x.size - 1
    assert "dropped 1 point" in fit.message


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: fit_sigmoid([1, 2, 4, 8, 16], [0.1, 0.2, 1.3, 0.5, 0.6]), "accuracies in \\[0, 1\\]"),
        (lambda: fit_sigmoid([1, 2, 4], [0.1, 0.2]), "differ in length"),
        (lambda: fit_sigmoid([1, 2, 4, 8, 16], [0.1] * 5, sigma=0.0), "sigma must be"),
        (lambda: fit_sigmoid([1, 2, 4, 8, 16], [0.1] * 5, log_base=1), "log_base"),
        (lambda: fit_power_law([0, 2, 4, 8, 16], [3, 2, 1.5, 1.2, 1.1]), "x > 0"),
        (lambda: fit_power_law([1, 2, 4, 8, 16], [-3, -2, -1.5, -1.2, -1.1]), "non-negative loss"),
        (lambda: fit_power_law([1, 2, np.nan, 8], [3, 2, 1.5, 1.2]), "non-finite"),
    ],
)
def test_bad_inputs_raise_value_errors_naming_the_fix(call, match):
    with pytest.raises(ValueError, match=match):
        call()
