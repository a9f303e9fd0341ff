"""One scaling curve: accuracy (or a loss) against any axis, with an optional interval.

A sweep gives a curve: accuracy (or a loss) against thinking tokens, samples, model
parameters or training steps. ``Curve`` is what the fits (``fits``, ``bootstrap``),
the shape classifier (``shapes``) and the learning-rate schedule check (``schedule``)
take, so a curve is checked once, here: x and y one-dimensional, finite and of one
length, and ``lo <= hi`` where an interval is given.

Errors are one standard error per point. ``Curve.lo``/``hi`` are taken as a 95%
interval (``INTERVAL_Z``), so ``Curve.y_err`` is their half-width over 1.96.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INTERVAL_Z = 1.96  # Curve.lo/hi are 95% intervals


@dataclass(frozen=True, eq=False)
class Curve:
    """One scaling curve along any axis ("thinking tokens", "samples", "training step").

    ``lo``/``hi`` are a 95% interval per point (``INTERVAL_Z``), or absent.
    """

    axis: str
    x: np.ndarray
    y: np.ndarray
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    label: str = ""

    def __post_init__(self):
        if not isinstance(self.axis, str) or not self.axis:
            raise ValueError(f"Curve axis must name what x is (\"thinking tokens\", \"training step\"), "
                             f"got {self.axis!r}")
        x, y = checked_vector(self.x, "x"), checked_vector(self.y, "y")
        if x.size != y.size:
            raise ValueError(f"Curve x and y differ in length ({x.size} vs {y.size}); pass one y per x")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)
        if (self.lo is None) != (self.hi is None):
            raise ValueError("Curve needs both lo and hi, or neither; pass the interval's two ends")
        if self.lo is not None:
            lo, hi = checked_vector(self.lo, "lo"), checked_vector(self.hi, "hi")
            if lo.size != x.size or hi.size != x.size or np.any(lo > hi):
                raise ValueError(f"Curve lo/hi must have {x.size} values each with lo <= hi; "
                                 f"got {lo.size} and {hi.size}")
            object.__setattr__(self, "lo", lo)
            object.__setattr__(self, "hi", hi)

    @property
    def y_err(self) -> np.ndarray | None:
        """One standard error per point, from the 95% interval; None without one."""
        if self.lo is None:
            return None
        return (self.hi - self.lo) / (2 * INTERVAL_Z)


def checked_vector(values, name: str) -> np.ndarray:
    """``values`` as a one-dimensional float array; a ValueError naming ``name`` if not finite."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}; pass one value per point")
    if not np.all(np.isfinite(array)):
        bad = array[~np.isfinite(array)][:3]
        raise ValueError(f"{name} has non-finite values ({bad}); drop those points")
    return array


def curve_arrays(x, y, what: str):
    """(x, y, y_err or None) from a Curve or from two arrays."""
    if isinstance(x, Curve):
        if y is not None:
            raise TypeError(f"{what}: pass a Curve alone, or x and y arrays, not both")
        return x.x, x.y, x.y_err
    if y is None:
        raise TypeError(f"{what}: y is missing; pass x and y arrays, or a Curve")
    x, y = checked_vector(x, "x"), checked_vector(y, "y")
    if x.size != y.size:
        raise ValueError(f"{what}: x and y differ in length ({x.size} vs {y.size}); pass one y per x")
    return x, y, None

