"""From stored sweep traces to the tables, headline numbers and figures a paper reports.

``rlcot.evals.series`` groups the traces of ``rlcot.evals.sweep`` into series and computes their
points; this module turns them into what a sweep prints and plots:

- the headline table, one line per (series, budget): accuracy per budget with its paired
  bootstrap CI, the thinking tokens actually spent, pass@k and maj@k, outcome rates;
- before against after training, per budget, with the paired CI of the change
  (``rlcot.evals.intervals.bootstrap_difference``);
- outcome rates of the hedge scheme, and with samples > 1 agreement-based confidence
  with ECE, Brier score and AURC (``rlcot.evals.outcomes``);
- ``plot_runs``: every figure of one sweep (or several overlaid) and a ``summary.json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Sequence

import numpy as np

from rlcot.records import ScoredTrace

from . import intervals, outcomes
from .points import Point
from .series import (Series, _at_k, _by_problem, at_k_points, confidence_of, curve_points, is_correct, risk_points,
                     s1_numbers, series_of)

SIZE_RATIO = 1.25  # models plot against their size only when the largest has at least this times the smallest's


def rates_of(traces: Sequence[ScoredTrace]) -> outcomes.OutcomeRates:
    """The hedge scheme's outcome rates of some traces (``outcomes.outcome_rates`` of their verdicts and scores)."""
    return outcomes.outcome_rates([r.verdict.outcome for r in traces], [r.verdict.hedged for r in traces],
                                  [r.score for r in traces])


def headline(traces: Sequence[ScoredTrace], seed: int = 0) -> list[dict]:
    """One table line per (series, budget): the numbers a sweep prints at its end."""
    table = []
    for series in series_of(traces):
        points = {(p.metric, p.budget): p for p in curve_points(series, "", seed=seed)}
        for budget in series.budgets:
            at = series.at(budget)
            rates = rates_of(at)
            accuracy = points["accuracy", budget]
            line = {"model": series.label, "B": budget,
                    "think": f"{np.mean([r.thinking_tokens for r in at]):.0f}",
                    "cap": f"{np.mean([r.capped for r in at]):.0%}",
                    "acc": f"{accuracy.y:.3f}", "95% CI": f"{accuracy.lo:.2f}-{accuracy.hi:.2f}"}
            gold = points.get(("gold_logprob", budget))
            line["logp gold"] = f"{gold.y:.2f}" if gold else "-"
            line.update({"answered": f"{rates.coverage:.0%}", "score": f"{rates.mean_score:+.2f}"})
            if series.samples > 1:
                groups = list(_by_problem(at).values())
                k = series.samples
                line[f"pass@{k}"] = f"{np.nanmean([_at_k('pass@k', g, k) for g in groups]):.3f}"
                line[f"maj@{k}"] = f"{np.nanmean([_at_k('maj@k', g, k) for g in groups]):.3f}"
            table.append(line)
    return table


def before_after(traces: Sequence[ScoredTrace], seed: int = 0, reference: str | None = None) -> list[dict]:
    """Per budget: a reference curve against the last (after training), on the same problems.

    The reference is the first curve (before training), or the curve labelled
    ``reference`` where there is one ("after SFT warm-up": what GRPO started from, so
    the change is RL's own). ``paired_change`` says what each line holds.
    """
    curves = series_of(traces)
    if len(curves) < 2:
        return []
    named = [series for series in curves if series.label == reference]
    return paired_change(named[0] if named else curves[0], curves[-1], seed)


def paired_change(before: Series, after: Series, seed: int = 0) -> list[dict]:
    """Per budget both curves share: accuracy and mean score of each, and their changes with paired CIs.

    Paired by problem (``intervals.bootstrap_difference`` over per-problem means across
    samples, so problem difficulty cancels): with samples > 1 at a temperature the
    accuracy is mean@k, what GRPO optimizes. Where some task rows are unanswerable, the
    abstain rate on answerable and on unanswerable rows for each (what the hedge recipe
    is judged by). Empty when the curves share no problem.
    """
    shared = sorted(set(before.problems) & set(after.problems))
    if not shared:  # runs over other questions: no paired change to measure (the curves still show each)
        return []
    table = []
    for budget in sorted(set(before.budgets) & set(after.budgets)):
        def per_problem(series, value):
            by = _by_problem([r for r in series.at(budget) if r.row_id in shared])
            return np.array([np.mean([value(r) for r in by[p]]) for p in shared])

        a, b = per_problem(before, is_correct), per_problem(after, is_correct)
        change = intervals.bootstrap_difference(b, a, seed=seed)
        score_a, score_b = per_problem(before, _score), per_problem(after, _score)
        score_change = intervals.bootstrap_difference(score_b, score_a, seed=seed)
        line = {"budget": budget, "before": before.label, "after": after.label, "problems": len(shared),
                "samples": min(before.samples, after.samples),
                "accuracy_before": float(a.mean()), "accuracy_after": float(b.mean()),
                "change": float(change.mean), "change_lo": float(change.lo), "change_hi": float(change.hi),
                "score_before": float(score_a.mean()), "score_after": float(score_b.mean()),
                "score_change": float(score_change.mean), "score_change_lo": float(score_change.lo),
                "score_change_hi": float(score_change.hi), "level": change.level}

        def answerable(trace: ScoredTrace) -> bool:
            return trace.row.get("answerable", True) is not False

        if not all(answerable(r) for r in after.at(budget)):
            for name, series in (("before", before), ("after", after)):
                for kind, flag in (("answerable", True), ("unanswerable", False)):
                    picked = [r for r in series.at(budget) if answerable(r) == flag]
                    line[f"abstain_{kind}_{name}"] = float(np.mean(
                        [r.verdict.outcome == "abstain" for r in picked])) if picked else None
        table.append(line)
    return table


def _score(trace: ScoredTrace) -> float:
    return trace.score


def calibration(series: Series) -> list[dict]:
    """Per budget: outcome rates, and with samples > 1 ECE, Brier score and AURC of agreement confidence."""
    out = []
    for budget in series.budgets:
        at = series.at(budget)
        rates = rates_of(at)
        line = {"budget": budget, **rates.__dict__}
        if series.samples > 1:
            confidence, correct = confidence_of(at)
            line.update(ece=outcomes.expected_calibration_error(confidence, correct),
                        brier=outcomes.brier_score(confidence, correct), aurc=outcomes.aurc(confidence, correct))
        out.append(line)
    return out


# ------------------------------------------------------------------ a run's figures


def plot_runs(traces: Sequence[ScoredTrace], out_dir, scheme: str = "default", fit: bool = False,
              seed: int = 0) -> dict:
    """Every figure of one sweep (or several overlaid) and a ``summary.json``; returns the summary.

    Writes ``accuracy`` (with the gold log-probability panel where measured), ``at_k``
    and ``risk_coverage`` (samples > 1), ``compute`` (think longer or sample more: >= 2
    budgets and >= 2 samples; ``notes`` says why not otherwise), ``training``
    (accuracy per budget against the training step, with the learning-rate schedule's
    changes, when a run's checkpoints were swept) and ``model_size`` (when models of several sizes were), each as PNG,
    SVG and CSV.
    """
    from pathlib import Path

    from . import plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    all_series = series_of(traces)
    points, at_k, risk, summary = [], [], [], {"scheme": scheme, "series": {}, "files": []}
    fits = {}
    for series in all_series:
        curve = curve_points(series, scheme, seed=seed)
        points += curve
        at_k += at_k_points(series, scheme, seed=seed)
        risk += risk_points(series, scheme)
        info = {"n_problems": len(series.problems), "samples": series.samples, "budgets": series.budgets,
                "step": series.step, "s1": s1_numbers(series), "calibration": calibration(series)}
        info.update(_shape_and_fits(series, curve, fit, fits))
        summary["series"][series.label] = info
    files = plots.plot_accuracy(points, out_dir / "accuracy", fits=fits or None,
                                title=f"accuracy vs thinking tokens ({scheme} scoring)")
    if at_k:
        files += plots.plot_at_k(at_k, out_dir / "at_k", title="pass@k, maj@k, best@k (largest budget)")
    if risk:
        files += plots.plot_risk_coverage(risk, out_dir / "risk_coverage", title="risk-coverage, agreement confidence")
    compute_files, summary["compute"], summary["notes"] = _compute_plot(all_series, at_k, out_dir, seed)
    files += compute_files
    training_files, summary["training"] = _training_plot(all_series, points, out_dir)
    files += training_files + _size_plot(all_series, points, out_dir)
    summary["headline"] = headline(traces, seed=seed)
    summary["files"] = [str(path) for path in files]
    text = json.dumps(finite_or_null(summary), indent=2, default=jsonable, allow_nan=False)
    (out_dir / "summary.json").write_text(text + "\n")
    return summary


def _compute_plot(all_series: list[Series], at_k: list[Point], out_dir, seed: int) -> tuple[list, dict, list[str]]:
    """Think longer or sample more (``rlcot.evals.compute``), for every series with >= 2 budgets and >= 2 samples.

    Returns the files, per series and metric what wins where (with the frontier and the
    segments behind it), and a note naming each series the figure cannot be drawn for.
    """
    from . import compute, plots
    from .series import generated_tokens, paired_at_k

    eligible = [s for s in all_series if len(s.budgets) >= 2 and s.samples >= 2]
    notes = [f"no think-longer-or-sample-more figure for {s.label} ({len(s.budgets)} budget"
             f"{'s' * (len(s.budgets) != 1)} x {s.samples} sample{'s' * (s.samples != 1)} per row): it needs >= 2 "
             "budgets and >= 2 samples; sweep e.g. --budgets 0,64,256 --samples 8 --temperature 1"
             for s in all_series if not any(s is e for e in eligible)]
    points, found, info = [], {}, {}
    for series in eligible:
        mine = compute.compute_points([p for p in at_k if p.series == series.label], generated_tokens(series))
        points += mine
        for metric in compute.METRICS:
            settings = compute.settings(mine, metric)
            if not settings:
                continue
            found[series.label, metric] = compute.segments(settings, paired_at_k(series, metric, seed=seed))
            info.setdefault(series.label, {})[metric] = {
                "says": compute.describe(found[series.label, metric]),
                "frontier": [_setting_dict(s) for s in compute.frontier(settings)],
                "segments": [{"from_tokens": g.start, "to_tokens": g.end, "winner": g.winner, "clear": g.clear,
                              "difference": g.difference, "lo": g.lo, "hi": g.hi, "think": _setting_dict(g.think),
                              "sample": _setting_dict(g.sample)} for g in found[series.label, metric]]}
    if not points:
        return [], info, notes
    files = plots.plot_compute(points, out_dir / "compute", found,
                               title="think longer or sample more? accuracy vs tokens generated per problem")
    return files, info, notes


def _setting_dict(setting) -> dict:
    return {"budget": setting.budget, "k": setting.k, "tokens": setting.compute, "accuracy": setting.accuracy}


def _shape_and_fits(series: Series, curve: list[Point], fit: bool, fits: dict) -> dict:
    """The accuracy curve's shape (Wei et al.'s categories) and, when asked, its sigmoid and the gold power law."""
    from . import fits as fitting
    from . import shapes
    from .curves import INTERVAL_Z

    accuracy = [p for p in curve if p.metric == "accuracy" and p.x > 0]
    out: dict = {}
    if len(accuracy) >= shapes.MIN_CLASSIFY_POINTS:
        shape = shapes.classify_curve([p.x for p in accuracy], [p.y for p in accuracy],
                                      y_err=[(p.hi - p.lo) / (2 * INTERVAL_Z) for p in accuracy])
        out["shape"] = {"label": shape.label, "reason": shape.reason}
    else:
        out["shape"] = {"label": None, "reason": f"{len(accuracy)} budgets above 0 tokens; "
                                                 f"{shapes.MIN_CLASSIFY_POINTS} are needed to classify"}
    if not fit:
        return out
    xs = np.array([p.x for p in accuracy])
    sigmoid = fitting.fit_sigmoid(xs, [p.y for p in accuracy],
                                  sigma=[max((p.hi - p.lo) / (2 * INTERVAL_Z), 1e-3) for p in accuracy])
    out["sigmoid"] = _fit_dict(sigmoid)
    if sigmoid.converged:
        grid = np.geomspace(xs.min(), xs.max(), 64)
        fits[series.label] = (grid, sigmoid.predict(grid), f"{series.label}: sigmoid in log2 tokens")
    gold = [p for p in curve if p.metric == "gold_logprob" and p.x > 0]
    if len(gold) >= 4:
        out["gold_power_law"] = _fit_dict(fitting.fit_power_law([p.x for p in gold], [-p.y for p in gold]))
    return out


def _fit_dict(fit) -> dict:
    return {"kind": fit.kind, "converged": fit.converged, "message": fit.message, "params": fit.params,
            "stderr": fit.stderr, "n_points": fit.n_points, "residual_rmse": fit.residual_rmse}


def _training_plot(all_series: list[Series], points: list[Point], out_dir) -> tuple[list, dict]:
    """Accuracy at each budget against the training step, for series that are checkpoints of one run.

    The learning-rate schedule's changes (read from the run's ``trainer_state.json``) are
    drawn, and each big jump of a curve says whether it coincides with one: a jump at
    an LR drop is the schedule, not emergence.
    """
    from rlcot.runinfo import latest_trainer_state

    from . import plots, schedule
    from .curves import Curve

    # one curve per step: where two share one (a trainer's step 0 before and after its SFT warm-up), the later
    # is the policy the steps after it start from
    stepped = list({s.step: s for s in all_series if s.step is not None}.values())
    if len(stepped) < 2:
        return [], {}
    run_dir = stepped[0].traces[0].run_dir
    by_label = {s.label: s for s in stepped}
    curve = sorted((replace(p, series=f"B={p.budget}", x=float(by_label[p.series].step))
                    for p in points if p.metric == "accuracy" and p.series in by_label), key=lambda p: p.x)
    state = latest_trainer_state(run_dir) if run_dir else None
    changes = schedule.lr_changes(state) if state is not None else []
    info: dict = {"lr_changes": [{"step": c.step, "kind": c.kind, "lr_before": c.lr_before, "lr_after": c.lr_after}
                                 for c in changes], "jumps": []}
    for budget in sorted({p.budget for p in curve}):
        line = [p for p in curve if p.budget == budget]
        if len(line) < 2:
            continue
        shape = Curve("training step", [p.x for p in line], [p.y for p in line],
                      lo=[p.lo for p in line], hi=[p.hi for p in line], label=f"B={budget}")
        for jump in schedule.jumps_at_lr_changes(shape, changes):
            info["jumps"].append({"budget": budget, "from_step": jump.step_before, "to_step": jump.step_after,
                                  "delta": jump.delta, "at_lr_change": jump.at_lr_change,
                                  "lr_changes": [c.kind for c in jump.changes]})
    files = plots.plot_curve(curve, out_dir / "training", xlabel="training step (checkpoints)",
                             ylabel=f"accuracy ({len(stepped[0].problems)} problems, 95% CI)",
                             lr_changes=[c.step for c in changes], title="accuracy at each thinking budget over training")
    return files, info


def _size_plot(all_series: list[Series], points: list[Point], out_dir) -> list:
    """Accuracy at each budget against model size, when several models of known size were swept."""
    from . import plots

    sized = {s.label: s.traces[0].parameters for s in all_series if s.step is None}
    sized = {label: n for label, n in sized.items() if n}
    if len(sized) < 2 or max(sized.values()) < SIZE_RATIO * min(sized.values()):
        return []  # one size: adapters (LoRA adds ~1-5%) or fine-tunes of one model are not a scaling curve
    curve = sorted((replace(p, series=f"B={p.budget}", x=sized[p.series] / 1e6)
                    for p in points if p.metric == "accuracy" and p.series in sized), key=lambda p: p.x)
    return plots.plot_curve(curve, out_dir / "model_size", xlabel="parameters (millions; log2 axis)",
                            ylabel="accuracy (95% CI)", log_x=True, title="accuracy at each thinking budget by model size")


def finite_or_null(value):
    """NaN (nothing answered, too few points) as null: strict JSON, readable by a browser."""
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        return None
    return value


def jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
