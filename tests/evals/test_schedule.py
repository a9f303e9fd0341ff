"""Learning-rate schedule changes and the training-curve jumps that coincide with them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlcot.evals.curves import Curve
from rlcot.evals.schedule import LRChange, jumps_at_lr_changes, lr_changes

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
