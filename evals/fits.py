"""Fits of scaling curves: a sigmoid in log compute, and a power law for a loss.

A sweep gives a curve (``curves.Curve``): accuracy (or a loss) against thinking
tokens, samples, model parameters or training steps. This module answers: what are
its parameters? ``fit_sigmoid`` fits accuracy against log compute,
``y = floor + (ceiling - floor) / (1 + exp(-slope * (t - midpoint)))`` with
``t = log_base(x)``: below the midpoint the task is out of reach, above it the
accuracy saturates. ``fit_power_law`` fits a loss-like metric (the negative
log-probability of the gold answer against thinking tokens, say) with the form of
Kaplan et al. 2020 and Hoffmann et al. 2022, ``L(x) = E + A * x**(-alpha)``.
Intervals over problems come from ``bootstrap.bootstrap_fit``; the curve's shape
from ``shapes.classify_curve``.

A fit that does not converge says so. ``Fit.converged`` is False and ``Fit.message``
says why when: there are fewer distinct x than parameters, or y is constant;
curve_fit fails from every start; the slope or alpha runs into its cap (below);
without ``sigma``, no residual degree of freedom is left to estimate the noise; the
Jacobian at the optimum is rank deficient once each column is scaled by its
parameter's natural scale; or a parameter's standard error exceeds that scale (the
whole [0, 1] range for floor and ceiling, the sampled t range for the midpoint, the
largest |y| for E, the value itself for slope, A and alpha). The last two rules go
beyond "the covariance is finite" on purpose: pure noise fits *something* with a
finite covariance, and a sigmoid whose whole rise falls between two adjacent points
fits any steep slope equally well, which is why the slope is capped at
``SLOPE_MAX_PER_GAP`` over the smallest t gap and reaching the cap is a failure.
``Fit.predict`` refuses to evaluate a failed fit rather than return a curve nobody
can trust.

Departures from the papers, and why:

* Floor and ceiling are bounded to [0, 1] as plain box bounds with the slope free in
  sign; a fit that lands with ceiling < floor is the mirror image of one with them
  swapped and the slope negated, so it is stored that way. No reparametrisation is
  needed and ``floor <= ceiling`` holds for every returned fit; a falling accuracy
  has a negative slope.
* The power law is fitted in ``u = x / x_ref`` with ``x_ref`` the geometric mean of
  x, where the amplitude is what the data constrain; ``A`` is reported in the units
  of x (``A = A_ref * x_ref**alpha``, its error by the delta method), but whether
  it is identified is judged on ``A_ref``. ``E`` and ``A`` are >= 0 and ``alpha`` is
  in [0, ``ALPHA_MAX``]: a loss that falls with compute.

``sigma`` is one standard error per point. The fits do not weight by a Curve's
interval on their own: a zero-width interval at accuracy 0 or 1 would get infinite
weight, so pass ``sigma`` explicitly.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from .curves import curve_arrays

SIGMOID_PARAMS = ("floor", "ceiling", "midpoint", "slope")
POWER_LAW_PARAMS = ("E", "A", "alpha")

# -- fits ------------------------------------------------------------------------------
ALPHA_MAX = 10.0  # power-law exponents of losses are ~0.05-0.5; 10 only stops overflow
SLOPE_MAX_PER_GAP = 20.0  # |slope| cap, per smallest t gap: steeper is a step at this sampling
JACOBIAN_RCOND = 1e-6  # smallest/largest singular value of the scaled Jacobian
MAX_STDERR_SHARE = 1.0  # a standard error above the parameter's natural scale: not identified
MAX_NFEV = 100  # real curves converge in ~15 evaluations; noise wanders until this cap

_HINTS = {
    "floor": "the curve does not reach its lower level within the sampled x",
    "ceiling": "the curve does not reach its upper level within the sampled x",
    "midpoint": "the rise lies outside the sampled x, or there is none",
    "slope": "the whole rise may lie between two adjacent points: sample x between them",
    "E": "the loss has not started to level off within the sampled x",
    "A": "y does not fall with x as a power law",
    "A_ref": "y does not fall with x as a power law",
    "alpha": "y does not fall with x as a power law",
}


@dataclass(frozen=True)
class Fit:
    """A fitted curve. When ``converged`` is False, ``params`` hold the optimiser's last
    point for diagnosis only, ``message`` says why, and ``predict`` raises.
    When it converged, ``message`` holds notes (dropped points) or is empty.
    ``log_x`` is the sigmoid's axis; a power law always takes x itself (False)."""

    kind: str
    params: dict[str, float]
    stderr: dict[str, float]
    converged: bool
    message: str
    log_x: bool
    n_points: int
    residual_rmse: float
    log_base: float = 2.0
    stderr_source: str = "covariance"

    def predict(self, x) -> np.ndarray:
        """The fitted curve at x; a ValueError when the fit did not converge."""
        if not self.converged:
            raise ValueError(f"fit did not converge: {self.message}")
        x = np.asarray(x, dtype=float)
        p = self.params
        if self.kind == "power_law":
            if np.any(x <= 0):
                raise ValueError("power-law predict needs x > 0; drop x <= 0 first")
            return p["E"] + p["A"] * x ** (-p["alpha"])
        if self.log_x and np.any(x <= 0):
            raise ValueError("this sigmoid was fitted in log x; predict needs x > 0")
        t = np.log(x) / np.log(self.log_base) if self.log_x else x
        return _sigmoid(t, p["floor"], p["ceiling"], p["midpoint"], p["slope"])


def _sigma(sigma, n: int) -> np.ndarray | None:
    if sigma is None:
        return None
    array = np.asarray(sigma, dtype=float).ravel()
    if array.size not in (1, n):
        raise ValueError(f"sigma needs one value or one per point ({n}), got {array.size}")
    array = np.broadcast_to(array, (n,)).copy()
    if not np.all(np.isfinite(array) & (array > 0)):
        raise ValueError(f"sigma must be finite and > 0 (one standard error per point), got {array}; "
                         "leave it None for an unweighted fit")
    return array


# -- models and their Jacobians --------------------------------------------------------

def _logistic(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # exp-free: no overflow for steep slopes


def _sigmoid(t, floor, ceiling, midpoint, slope):
    return floor + (ceiling - floor) * _logistic(slope * (t - midpoint))


def _sigmoid_jacobian(t, floor, ceiling, midpoint, slope):
    s = _logistic(slope * (t - midpoint))
    bend = (ceiling - floor) * s * (1.0 - s)
    return np.column_stack([1.0 - s, s, -slope * bend, (t - midpoint) * bend])


def _power(u, E, A, alpha):
    return E + A * u ** (-alpha)


def _power_jacobian(u, E, A, alpha):
    decay = u ** (-alpha)
    return np.column_stack([np.ones_like(u), decay, -A * decay * np.log(u)])


# -- shared fitting machinery ----------------------------------------------------------

def _best_curve_fit(model, jacobian, t, y, sigma, starts, bounds):
    """The lowest-cost curve_fit over the starts: (popt, "") or (None, why all failed)."""
    best, best_cost, reason = None, np.inf, "no start was tried"
    weights = 1.0 if sigma is None else 1.0 / sigma
    for p0 in starts:
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                # we compute the covariance ourselves (below), so curve_fit's warning about
                # its own is noise
                warnings.simplefilter("ignore", optimize.OptimizeWarning)
                popt, _ = optimize.curve_fit(
                    model, t, y, p0=p0, sigma=sigma, absolute_sigma=sigma is not None,
                    bounds=bounds, method="trf", jac=jacobian, max_nfev=MAX_NFEV)
        except (RuntimeError, ValueError) as error:
            reason = f"curve_fit failed: {error}"
            continue
        cost = float(np.sum(((y - model(t, *popt)) * weights) ** 2))
        if np.isfinite(cost) and cost < best_cost:
            best, best_cost = popt, cost
    return best, ("" if best is not None else reason)


def _covariance(jacobian, residuals, sigma, scales, names):
    """(covariance, "") from the Jacobian at the optimum, or (None, why it has none).

    Columns are scaled by each parameter's natural scale first, so "rank deficient"
    means a change of a parameter by its own scale moves the curve by ~nothing.
    """
    weighted = jacobian if sigma is None else jacobian / sigma[:, None]
    scaled = weighted * scales
    if not np.all(np.isfinite(scaled)):
        return None, "the Jacobian at the optimum is not finite"
    _, singular, vt = np.linalg.svd(scaled, full_matrices=False)
    null = singular <= JACOBIAN_RCOND * singular[0]
    if singular[0] == 0 or null.any():
        weights = np.abs(vt if singular[0] == 0 else vt[null]).max(axis=0)
        involved = [name for name, w in zip(names, weights) if w >= 0.3 * weights.max()]
        return None, (f"{', '.join(involved)} not identifiable: the curve barely depends on "
                      f"{'them' if len(involved) > 1 else 'it'} (rank-deficient Jacobian); "
                      f"{_HINTS.get(involved[-1], 'add points')}")
    covariance = (vt.T / singular**2) @ vt * np.outer(scales, scales)
    if sigma is None:
        dof = residuals.size - len(names)
        if dof <= 0:
            return None, (f"no residual degrees of freedom ({residuals.size} points, {len(names)} "
                          "parameters) to estimate the noise: pass sigma or add points")
        covariance = covariance * float(np.sum(residuals**2)) / dof
    if not np.all(np.isfinite(covariance)):
        return None, "the covariance is not finite"
    return covariance, ""


def _unidentified(names, values, errors, scales, bounds) -> str:
    """Why some parameter's standard error exceeds its natural scale, or ""."""
    problems = []
    for name, value, error, scale, low, high in zip(names, values, errors, scales, *bounds):
        if np.isfinite(error) and error <= MAX_STDERR_SHARE * scale:
            continue
        at_bound = " (at its bound)" if np.isclose(value, [low, high], atol=1e-6).any() else ""
        problems.append(f"{name} = {value:.4g} +- {error:.3g}{at_bound} exceeds its scale "
                        f"{MAX_STDERR_SHARE * scale:.3g}: {_HINTS.get(name, 'add points')}")
    return "; ".join(problems)


def _failed(kind, names, message, values=None, rmse=math.nan, *, n_points, log_x, log_base) -> Fit:
    values = [math.nan] * len(names) if values is None else values
    return Fit(kind=kind, params={name: float(v) for name, v in zip(names, values)},
               stderr={name: math.inf for name in names}, converged=False, message=message,
               log_x=log_x, n_points=int(n_points), residual_rmse=rmse, log_base=float(log_base))


def _too_few(x, n_params: int) -> str:
    distinct = np.unique(x).size
    if distinct < n_params:
        return (f"{n_params} parameters need at least {n_params} distinct x values, got {distinct}; "
                "add points to the sweep")
    return ""


def _constant(y) -> str:
    if np.ptp(y) > 0:
        return ""
    return f"y is constant ({y[0]:.4g}): there is no change to fit; classify_curve calls this flat"


def _join(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


# -- sigmoid ---------------------------------------------------------------------------

def fit_sigmoid(x, y=None, sigma=None, log_x: bool = True, log_base: float = 2.0,
                drop_nonpositive: bool = False) -> Fit:
    """Fit accuracy ``y`` against ``t = log_base(x)`` (or x) with a four-parameter sigmoid.

    ``x`` may be a Curve (then leave ``y`` None). ``sigma`` is one standard error per
    point, used as absolute (binomial errors are known, not estimated from the fit);
    without it the fit is unweighted and errors scale with the residual variance.
    With ``log_x``, x must be > 0: a zero-budget point raises unless
    ``drop_nonpositive=True`` drops it, noted in ``message``. Returned params:
    floor, ceiling, midpoint and slope (midpoint in t units), plus ``midpoint_x`` =
    log_base**midpoint when ``log_x``.
    """
    t, y, sigma, note = _sigmoid_inputs(x, y, sigma, log_x, log_base, drop_nonpositive)
    names = SIGMOID_PARAMS + (("midpoint_x",) if log_x else ())
    failed = functools.partial(_failed, "sigmoid", names, n_points=t.size, log_x=log_x, log_base=log_base)
    few = _too_few(t, len(SIGMOID_PARAMS)) or _constant(y)
    if few:
        return failed(_join(few, note))
    # without a cap, noise or a one-interval jump sends the slope to infinity, slowly
    slope_cap = SLOPE_MAX_PER_GAP / float(np.min(np.diff(np.unique(t))))
    bounds = ([0.0, 0.0, -np.inf, -slope_cap], [1.0, 1.0, np.inf, slope_cap])
    popt, why = _best_curve_fit(_sigmoid, _sigmoid_jacobian, t, y, sigma, _sigmoid_starts(t, y), bounds)
    if popt is None:
        return failed(_join(why, note))
    floor, ceiling, midpoint, slope = popt
    if ceiling < floor:  # the mirror image: same curve, floor <= ceiling
        floor, ceiling, slope = ceiling, floor, -slope
    values = np.array([floor, ceiling, midpoint, slope])
    shown = [*values, log_base**midpoint] if log_x else list(values)
    residuals = y - _sigmoid(t, *values)
    rmse = float(np.sqrt(np.mean(residuals**2)))
    if abs(slope) >= 0.99 * slope_cap:  # trf stops just inside a bound, not on it
        return failed(_join(f"slope ran into its cap {slope_cap:.3g}: {_HINTS['slope']}", note), shown, rmse)
    scales = np.array([1.0, 1.0, float(t.max() - t.min()), abs(slope)])
    covariance, why = _covariance(_sigmoid_jacobian(t, *values), residuals, sigma, scales, SIGMOID_PARAMS)
    errors = None if covariance is None else np.sqrt(np.diag(covariance))
    why = why or _unidentified(SIGMOID_PARAMS, values, errors, scales, bounds)
    if why:
        return failed(_join(why, note), shown, rmse)
    stderr = list(errors)
    if log_x:  # delta method: d(b**m)/dm = b**m ln b
        stderr.append(shown[-1] * np.log(log_base) * errors[2])
    return Fit(kind="sigmoid", params=dict(zip(names, map(float, shown))),
               stderr=dict(zip(names, map(float, stderr))), converged=True, message=note,
               log_x=log_x, n_points=int(t.size), residual_rmse=rmse, log_base=float(log_base))


def _sigmoid_inputs(x, y, sigma, log_x, log_base, drop_nonpositive):
    """fit_sigmoid's inputs checked: (t, y, sigma, note about dropped points)."""
    x, y, _ = curve_arrays(x, y, "fit_sigmoid")
    sigma = _sigma(sigma, x.size)
    if not (log_base > 0 and log_base != 1):
        raise ValueError(f"log_base must be > 0 and != 1, got {log_base}; the default is 2 (doublings)")
    if np.any((y < 0) | (y > 1)):
        raise ValueError(f"fit_sigmoid fits accuracies in [0, 1], got y in [{y.min():.3g}, {y.max():.3g}]; "
                         "rescale y, or use fit_power_law for a loss")
    note = ""
    if log_x and np.any(x <= 0):
        bad = int(np.sum(x <= 0))
        if not drop_nonpositive:
            raise ValueError(f"log_x=True needs x > 0, got {bad} point(s) with x <= 0 (a zero budget?): "
                             "pass drop_nonpositive=True to drop them, or log_x=False")
        keep = x > 0
        x, y = x[keep], y[keep]
        sigma = None if sigma is None else sigma[keep]
        note = f"dropped {bad} point(s) with x <= 0"
    t = np.log(x) / np.log(log_base) if log_x else x
    return t, y, sigma, note


def _sigmoid_starts(t, y):
    """A few starting points: where y crosses half-way and mid-range, gentle and steep."""
    order = np.argsort(t, kind="stable")
    t, y = t[order], y[order]
    low, high = float(np.clip(y.min(), 0.0, 1.0)), float(np.clip(y.max(), 0.0, 1.0))
    if high - low < 1e-6:  # constant y: give the optimiser a non-degenerate start
        low, high = max(0.0, low - 1e-3), min(1.0, high + 1e-3)
    rising = np.corrcoef(t, y)[0, 1] >= 0 if np.std(y) > 0 else True
    crossed = (y >= (low + high) / 2) if rising else (y <= (low + high) / 2)
    first = int(np.argmax(crossed))
    crossing = float((t[first - 1] + t[first]) / 2) if first > 0 else float(t[0])
    span = float(t[-1] - t[0])
    sign = 1.0 if rising else -1.0
    midpoints = dict.fromkeys([crossing, float((t[0] + t[-1]) / 2)])
    return [(low, high, m, sign * k / span) for m in midpoints for k in (4.0, 16.0)]


# -- power law -------------------------------------------------------------------------

def fit_power_law(x, y=None, sigma=None) -> Fit:
    """Fit a loss-like ``y`` against ``x > 0`` with ``L(x) = E + A * x**(-alpha)``.

    ``x`` may be a Curve (then leave ``y`` None); ``sigma`` as in ``fit_sigmoid``.
    E >= 0 (a loss has a floor at or above zero), A >= 0 and 0 <= alpha <= ALPHA_MAX:
    the loss falls with x. Identifiability is judged in ``u = x / x_ref`` (module
    docstring); params are E, A (in the units of x) and alpha.
    """
    x, y, _ = curve_arrays(x, y, "fit_power_law")
    sigma = _sigma(sigma, x.size)
    if np.any(x <= 0):
        raise ValueError(f"fit_power_law needs x > 0, got {int(np.sum(x <= 0))} point(s) with x <= 0; "
                         "drop them (x**-alpha is infinite at 0)")
    if np.any(y < 0):
        raise ValueError(f"fit_power_law fits a non-negative loss (E >= 0), got min y = {y.min():.3g}; "
                         "fit a loss such as the negative log-probability, not a log-probability")
    names = POWER_LAW_PARAMS
    failed = functools.partial(_failed, "power_law", names, n_points=x.size, log_x=False, log_base=2.0)
    few = _too_few(x, len(names)) or _constant(y)
    if few:
        return failed(few)
    x_ref = float(np.exp(np.mean(np.log(x))))
    u = x / x_ref
    bounds = ([0.0, 0.0, 0.0], [np.inf, np.inf, ALPHA_MAX])
    popt, why = _best_curve_fit(_power, _power_jacobian, u, y, sigma, _power_starts(u, y, sigma), bounds)
    if popt is None:
        return failed(why)
    E, A_ref, alpha = popt
    values = [E, A_ref * x_ref**alpha, alpha]
    residuals = y - _power(u, *popt)
    rmse = float(np.sqrt(np.mean(residuals**2)))
    if alpha >= 0.99 * ALPHA_MAX:  # trf stops just inside a bound, not on it
        return failed(f"alpha ran into its cap ALPHA_MAX={ALPHA_MAX}: y falls faster than any "
                      "plausible power law", values, rmse)
    scales = np.array([np.max(np.abs(y)), abs(A_ref), abs(alpha)])
    covariance, why = _covariance(_power_jacobian(u, *popt), residuals, sigma, scales, names)
    errors = None if covariance is None else np.sqrt(np.diag(covariance))
    why = why or _unidentified(("E", "A_ref", "alpha"), popt, errors, scales, bounds)
    if why:
        return failed(why, values, rmse)
    # delta method into the units of x: A = A_ref * x_ref**alpha
    to_x = np.array([[1, 0, 0], [0, x_ref**alpha, A_ref * x_ref**alpha * np.log(x_ref)], [0, 0, 1]])
    errors = np.sqrt(np.diag(to_x @ covariance @ to_x.T))
    return Fit(kind="power_law", params=dict(zip(names, map(float, values))),
               stderr=dict(zip(names, map(float, errors))), converged=True, message="",
               log_x=False, n_points=int(x.size), residual_rmse=rmse)


def _power_starts(u, y, sigma):
    """Starts from a grid over alpha, where (E, A) solve a non-negative linear fit."""
    weights = np.ones_like(y) if sigma is None else 1.0 / sigma
    tried = []
    for alpha in np.geomspace(0.01, 3.0, 25):
        design = np.column_stack([np.ones_like(u), u ** (-alpha)]) * weights[:, None]
        (E, A), residual = optimize.nnls(design, y * weights)
        tried.append((residual, E, max(A, 1e-9), alpha))
    tried.sort()
    return [(E, A, alpha) for _, E, A, alpha in tried[:2]]
