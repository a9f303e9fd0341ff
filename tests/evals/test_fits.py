"""Scaling-curve fits, shapes and LR-schedule changes on synthetic curves with seeded noise."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlcot.evals.fits import (
    SHAPES,
    Curve,
    LRChange,
    bootstrap_fit,
    classify_curve,
    fit_power_law,
    fit_sigmoid,
    jumps_at_lr_changes,
    lr_changes,
)

SIGMOID = {"floor": 0.1, "ceiling": 0.85, "midpoint": 10.0, "slope": 1.0}  # midpoint: 2**10 tokens
POWER_LAW = {"E": 1.5, "A": 20.0, "alpha": 0.4}


def sigmoid(t, floor, ceiling, midpoint, slope):
    return floor + (ceiling - floor) / (1 + np.exp(-slope * (t - midpoint)))


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


# ---------------------------------------------------------------- bootstrap over problems


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


# ---------------------------------------------------------------- shapes (Wei et al. 2022)

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


# ---------------------------------------------------------------- learning-rate schedules

STEPS = np.arange(10, 1001, 10)


def trainer_state(lrs, steps=STEPS):
    """A trainer_state.json as the HF Trainer writes it: train logs with the LR, eval logs without."""
    history = []
    for step, lr in zip(steps, lrs):
        history.append({"epoch": step / 1000, "step": int(step), "learning_rate": float(lr), "loss": 1.0})
        if step % 100 == 0:
            history.append({"epoch": step / 1000, "step": int(step), "eval_loss": 0.9})
    return {"global_step": int(steps[-1]), "log_history": history}


WARMUP_LINEAR = np.where(STEPS <= 100, 1e-4 * STEPS / 100, 1e-4 * (1000 - STEPS) / 900)
STEP_SCHEDULE = np.where(STEPS < 300, 1e-3, np.where(STEPS < 600, 1e-4, 1e-5))


def test_warmup_then_linear_decay_marks_the_peak_and_no_drops():
    changes = lr_changes(trainer_state(WARMUP_LINEAR))
    assert [c.kind for c in changes] == ["warmup_end", "decay_start"]
    for change in changes:
        assert change.previous_step == 100 and change.step == 110
        assert change.lr_before == pytest.approx(1e-4)
    # the last logged steps halve the LR on the way to 0 and are still not drops


def test_step_schedule_drops_are_found_from_a_file(tmp_path):
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps(trainer_state(STEP_SCHEDULE)))
    for source in (path, str(path), tmp_path):  # the file, its name, the checkpoint folder
        changes = lr_changes(source)
        found = [(c.kind, c.previous_step, c.step) for c in changes]
        assert found == [("drop", 290, 300), ("drop", 590, 600)]
        assert changes[0].lr_before == pytest.approx(1e-3) and changes[0].lr_after == pytest.approx(1e-4)


def test_cosine_with_warm_restarts_marks_the_restarts():
    cycle = 300
    cosine = 1e-3 * 0.5 * (1 + np.cos(np.pi * ((STEPS - 50) % cycle) / cycle))
    lrs = np.where(STEPS <= 50, 1e-3 * STEPS / 50, cosine)
    found = [(c.kind, c.step) for c in lr_changes(trainer_state(lrs))]
    restarts = [("restart", 350), ("restart", 650), ("restart", 950)]
    assert found == [("warmup_end", 60), ("decay_start", 60), *restarts]


def test_lr_changes_needs_a_logged_learning_rate():
    with pytest.raises(ValueError, match="logging_steps"):
        lr_changes({"log_history": [{"step": 10, "eval_loss": 1.0}]})
    with pytest.raises(ValueError, match="log_history"):
        lr_changes({"global_step": 10})


def accuracy_run(seed=0):
    """Eval accuracy every 50 steps: a slow climb, a jump at 300-350 and another at 750-800."""
    steps = np.arange(0, 1001, 50.0)
    noise = np.random.default_rng(seed).normal(0, 0.01, steps.size)
    return steps, 0.2 + 0.0002 * steps + 0.25 * (steps >= 350) + 0.2 * (steps >= 800) + noise


@pytest.mark.parametrize("seed", range(5))
def test_a_jump_at_the_lr_drop_is_flagged_and_the_other_is_not(seed):
    steps, accuracy = accuracy_run(seed)
    changes = lr_changes(trainer_state(STEP_SCHEDULE))
    jumps = jumps_at_lr_changes(Curve("training step", steps, accuracy), changes)
    assert [(j.step_before, j.step_after) for j in jumps] == [(300, 350), (750, 800)]
    at_drop, elsewhere = jumps
    assert at_drop.at_lr_change and [c.step for c in at_drop.changes] == [300]
    assert not elsewhere.at_lr_change
    assert at_drop.delta > 0.2


def test_a_smooth_training_curve_has_no_jumps():
    steps = np.arange(0, 1001, 50.0)
    accuracy = 0.2 + 0.0005 * steps + np.random.default_rng(0).normal(0, 0.01, steps.size)
    changes = lr_changes(trainer_state(STEP_SCHEDULE))
    assert jumps_at_lr_changes(Curve("training step", steps, accuracy), changes) == []


def test_a_jump_within_the_noise_of_its_interval_is_not_big():
    steps, accuracy = accuracy_run()
    wide = Curve("training step", steps, accuracy, lo=accuracy - 0.2, hi=accuracy + 0.2)
    assert jumps_at_lr_changes(wide, [LRChange(300, "drop", 1e-3, 1e-4, 290)]) == []
