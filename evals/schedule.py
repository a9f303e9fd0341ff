"""Is a jump in a training curve the learning-rate schedule?

``lr_changes`` reads the learning rate logged in a Hugging Face
``trainer_state.json`` and marks the warmup end, the start of decay, step-schedule
drops and restarts; ``jumps_at_lr_changes`` says which big jumps of a training-step
curve line up with one. A jump that coincides with an LR drop is the optimiser
settling into a basin, not emergence (``shapes.classify_curve`` would call it one).
Every threshold is a named constant below; a change is *sudden* by its size relative
to the LR and by its per-step rate relative to its neighbours', so a linear or cosine
decay never is.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .curves import Curve

LR_CHANGE_MIN_RELATIVE = 0.2  # a sudden change moves the LR by >= 20% of the larger value
LR_SUDDEN_FACTOR = 4.0  # and its per-step rate is 4x both neighbouring transitions'
BIG_JUMP_SHARE = 0.25  # a big jump moves y by >= 25% of the curve's range in one interval
JUMP_NOISE_Z = 3.0  # and by >= 3 combined standard errors when the curve has intervals


@dataclass(frozen=True)
class LRChange:
    """A change of the learning-rate schedule between two consecutive logged steps.

    It happened after ``previous_step`` and by ``step``; ``lr_before``/``lr_after`` are
    the rates logged there. ``kind``: "warmup_end" (the LR stops rising; the peak is
    ``previous_step``), "decay_start" (the first gradual fall), "drop" (a sudden fall:
    a step schedule) or "restart" (a sudden rise after warmup: warm restarts).
    """

    step: int
    kind: str
    lr_before: float
    lr_after: float
    previous_step: int


def lr_changes(trainer_state: Mapping[str, Any] | str | os.PathLike) -> list[LRChange]:
    """The warmup end, decay start, drops and restarts in a run's logged learning rate.

    ``trainer_state`` is a Hugging Face ``trainer_state.json`` (a dict, a path to it, or
    the checkpoint folder holding it); its ``log_history`` entries with "step" and
    "learning_rate" are read, the rest (eval entries) ignored. A transition between
    consecutive logged steps is *sudden* when it moves the LR by at least
    ``LR_CHANGE_MIN_RELATIVE`` of the larger of the two rates and its per-step rate of
    change is over ``LR_SUDDEN_FACTOR`` times that of both neighbouring transitions:
    so a linear or cosine decay is never sudden, even near zero where each logged
    step halves the LR, while a step schedule's drop always is.
    """
    steps, rates = _lr_log(trainer_state)
    if steps.size < 2:
        return []
    changes: list[tuple[int, str]] = []  # (transition k: steps[k] -> steps[k + 1], kind)
    deltas = np.diff(rates)
    after_warmup = 0
    if deltas[0] > 0:  # the schedule opens with a warmup: it ends at the first non-rise
        not_rising = np.nonzero(deltas <= 0)[0]
        if not_rising.size == 0:
            return []  # still warming up when the log ends
        after_warmup = int(not_rising[0])
        changes.append((after_warmup, "warmup_end"))
    sudden = _sudden(steps, rates)
    gradual_falls = [k for k in range(after_warmup, deltas.size) if deltas[k] < 0 and not sudden[k]]
    if gradual_falls:
        changes.append((gradual_falls[0], "decay_start"))
    changes += [(k, "drop" if deltas[k] < 0 else "restart")
                for k in range(after_warmup, deltas.size) if sudden[k]]
    return [LRChange(int(steps[k + 1]), kind, float(rates[k]), float(rates[k + 1]), int(steps[k]))
            for k, kind in sorted(changes, key=lambda change: change[0])]


def _sudden(steps, rates) -> np.ndarray:
    """Per transition: is it a sudden change (lr_changes' docstring)?"""
    deltas = np.diff(rates)
    per_step = np.abs(deltas) / np.diff(steps)
    neighbours = np.maximum(np.concatenate([[0.0], per_step[:-1]]), np.concatenate([per_step[1:], [0.0]]))
    larger = np.maximum(rates[:-1], rates[1:])
    relative = np.divide(np.abs(deltas), larger, out=np.zeros_like(deltas), where=larger > 0)
    return (relative >= LR_CHANGE_MIN_RELATIVE) & (per_step > LR_SUDDEN_FACTOR * neighbours)


def _lr_log(trainer_state) -> tuple[np.ndarray, np.ndarray]:
    """(steps, learning rates) from a trainer state, sorted by step, last entry per step."""
    if isinstance(trainer_state, (str, os.PathLike)):
        path = Path(trainer_state)
        if path.is_dir():
            path = path / "trainer_state.json"
        if not path.is_file():
            raise ValueError(f"no trainer state at {path}; pass trainer_state.json or the checkpoint folder")
        trainer_state = json.loads(path.read_text())
    history = trainer_state.get("log_history") if isinstance(trainer_state, Mapping) else None
    if not isinstance(history, list):
        raise ValueError("trainer state has no 'log_history' list; pass the dict the Trainer saves "
                         "as trainer_state.json")
    logged: dict[int, float] = {}
    for entry in history:
        if isinstance(entry, Mapping) and "step" in entry and "learning_rate" in entry:
            logged[int(entry["step"])] = float(entry["learning_rate"])
    if not logged:
        raise ValueError("log_history has no entries with both 'step' and 'learning_rate'; "
                         "train with logging_steps set (the Trainer logs the LR with the loss)")
    steps = np.array(sorted(logged), dtype=float)
    return steps, np.array([logged[int(s)] for s in steps])


@dataclass(frozen=True)
class Jump:
    """A big change of a training-step curve between two consecutive logged steps,
    and the LR changes it coincides with (empty: none, so not the schedule)."""

    step_before: float
    step_after: float
    y_before: float
    y_after: float
    changes: tuple[LRChange, ...]

    @property
    def delta(self) -> float:
        return self.y_after - self.y_before

    @property
    def at_lr_change(self) -> bool:
        return bool(self.changes)


def jumps_at_lr_changes(curve: Curve, changes: Sequence[LRChange], min_share: float = BIG_JUMP_SHARE,
                        min_jump: float = 0.0) -> list[Jump]:
    """Every big jump of a training-step curve, each with the LR changes it coincides with.

    A jump is a change between consecutive points (sorted by step) of at least
    ``max(min_share * (max(y) - min(y)), min_jump)``, and, when the curve has an
    interval, at least ``JUMP_NOISE_Z`` combined standard errors; either sign counts
    (a loss drops where an accuracy jumps). A jump from step s0 to s1 coincides with
    an LR change when the change's span [previous_step, step] meets [s0 - (s1 - s0), s1]:
    within one logged interval, allowing the effect of a change to show one eval late.
    A jump that coincides with an LR drop is the schedule, not emergence.
    """
    if not isinstance(curve, Curve):
        raise TypeError(f"jumps_at_lr_changes takes a Curve, got {type(curve).__name__}; "
                        "wrap arrays as Curve('training step', steps, y)")
    if not all(isinstance(c, LRChange) for c in changes):
        raise TypeError("changes must be LRChange items, as lr_changes returns them")
    order = np.argsort(curve.x, kind="stable")
    steps, y = curve.x[order], curve.y[order]
    err = None if curve.y_err is None else curve.y_err[order]
    threshold = max(min_share * float(np.ptp(y)), min_jump)
    jumps = []
    for k in range(steps.size - 1):
        size = abs(y[k + 1] - y[k])
        if size == 0 or size < threshold:
            continue
        if err is not None and size < JUMP_NOISE_Z * math.hypot(err[k], err[k + 1]):
            continue
        start, end = steps[k] - (steps[k + 1] - steps[k]), steps[k + 1]
        near = tuple(c for c in changes if c.previous_step <= end and c.step >= start)
        jumps.append(Jump(float(steps[k]), float(steps[k + 1]), float(y[k]), float(y[k + 1]), near))
    return jumps
