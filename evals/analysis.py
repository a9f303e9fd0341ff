"""From sweep rows to the numbers and points a paper reports.

``rlcot.evals.sweep`` stores one row per (model, row, sample, budget); this module groups
them into series (one per model or checkpoint, and per forcing mode: a "Wait"-extended
budget is another curve) and computes, with the estimators of ``rlcot.evals.metrics``:

- accuracy per budget with a paired bootstrap CI resampled by problem: budgets share
  traces (a budget's trace is a fork of the next one's), so the points of one curve are
  not independent and each resample draws the same problems for all of them;
- the x-axis s1 plots, the mean thinking tokens actually spent, the budget kept beside;
- the gold answer's mean log-probability (teacher-forced on the forked caches), the continuous metric;
- pass@k (best-of-k picked by the verifier), maj@k, and best@k (best-of-k picked by
  the model's mean token log-probability, a verifier-free score) for k = 1, 2, 4, ...
  up to the samples drawn (unbiased, exact);
- outcome rates of the hedge scheme, and with samples > 1 agreement-based confidence
  with ECE, Brier score and the risk-coverage curve;
- s1's Control, Scaling and Performance (s1, section 3.2) per series.

Answer keys for voting are ``(verdict answer, outcome)``: the verifier's reading of
the answer, kept apart by outcome so two spellings the verifier judged differently
never merge; an unparsed sample has no key and never votes.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

import numpy as np

from . import metrics
from .plots import Point

CONFIDENCE_LEVEL = 0.95
SIZE_RATIO = 1.25  # models plot against their size only when the largest has at least this times the smallest's


@dataclass(frozen=True)
class Series:
    """The rows of one curve: one model (or checkpoint) under one forcing mode."""

    label: str
    rows: tuple[dict, ...]

    @property
    def budgets(self) -> list[int]:
        return sorted({row["budget"] for row in self.rows})

    @property
    def problems(self) -> list[str]:
        return sorted({row["row_id"] for row in self.rows})

    @property
    def samples(self) -> int:
        return max(row["sample"] for row in self.rows) + 1

    @property
    def step(self) -> int | None:
        return self.rows[0].get("step")

    def at(self, budget: int) -> list[dict]:
        return [row for row in self.rows if row["budget"] == budget]


def series_of(rows: Iterable[dict]) -> list[Series]:
    """Rows grouped into curves, in order of first appearance (checkpoints by step).

    A curve never pools rows swept with different settings (``rlcot.evals.store.SETTINGS``:
    task, temperature, seed, ...). A sweep refuses to write them into one directory, but
    an older version did not: such rows are split into one curve per setting, each
    labelled with the settings that tell them apart (``m [temperature=0.7]``).
    """
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        label = row.get("series") or row["model"]
        groups[label + (" +Wait" if row.get("mode") == "extend" else "")].append(row)
    split = {label + suffix: part for label, group in groups.items() for suffix, part in _by_settings(group)}
    ordered = sorted(split.items(), key=lambda item: (item[1][0].get("step") is None, item[1][0].get("step") or 0))
    return [Series(label, tuple(group)) for label, group in ordered]


def _by_settings(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    """``[(label suffix, rows)]``: one part per setting the rows record, ``[("", rows)]`` when they agree.

    Settings are compared where every row records them (an older row lacks some).
    """
    from .store import SETTING_NAMES, describe_setting, row_settings

    settings = [row_settings(row) for row in rows]
    if all(s == settings[0] for s in settings):  # the usual case, and cheap: no serialising
        return [("", rows)]
    shared = [name for name in settings[0] if all(name in s for s in settings)]
    parts: dict[str, list[int]] = defaultdict(list)
    for i, recorded in enumerate(settings):
        parts[json.dumps([recorded[name] for name in shared], sort_keys=True, default=str)].append(i)
    if len(parts) == 1:
        return [("", rows)]
    varying = [name for name in shared
               if len({json.dumps(s[name], sort_keys=True, default=str) for s in settings}) > 1]
    out = []
    for members in parts.values():
        first = settings[members[0]]
        named = ", ".join(f"{SETTING_NAMES.get(n, n)}={describe_setting(n, first[n])}" for n in varying)
        out.append((f" [{named}]", [rows[i] for i in members]))
    return out


def is_correct(row: dict) -> bool:
    return row["verdict"]["outcome"] == "correct"


def answer_key(row: dict):
    verdict = row["verdict"]
    if verdict["outcome"] == "unparsed":
        return None
    return (str(verdict.get("answer")).strip(), verdict["outcome"])


def per_problem(series: Series, value) -> np.ndarray:
    """``[problem, budget]`` mean over samples of ``value(row)``; NaN where a cell has no row or value."""
    problems, budgets = series.problems, series.budgets
    p_index = {p: i for i, p in enumerate(problems)}
    b_index = {b: j for j, b in enumerate(budgets)}
    total = np.zeros((len(problems), len(budgets)))
    count = np.zeros_like(total)
    for row in series.rows:
        v = value(row)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        i, j = p_index[row["row_id"]], b_index[row["budget"]]
        total[i, j] += v
        count[i, j] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def spent_tokens(series: Series) -> list[float]:
    """The x-axis: mean thinking tokens actually spent at each budget (s1's)."""
    return [float(np.mean([row["thinking_tokens"] for row in series.at(b)])) for b in series.budgets]


def curve_points(series: Series, scheme: str, seed: int = 0, n_boot: int = 2000) -> list[Point]:
    """Accuracy (and the gold log-probability, where measured) per budget, with paired CIs."""
    xs = spent_tokens(series)
    common = dict(series=series.label, n_problems=len(series.problems), samples=series.samples, scheme=scheme)
    out = []
    for metric, value in (("accuracy", lambda r: float(is_correct(r))), ("gold_logprob", lambda r: r.get("gold_logprob"))):
        table = per_problem(series, value)
        if np.isnan(table).all():
            continue
        estimate = metrics.bootstrap_ci(table, n_boot=n_boot, level=CONFIDENCE_LEVEL, seed=seed)
        for j, budget in enumerate(series.budgets):
            out.append(Point(metric=metric, x=xs[j], y=float(estimate.mean[j]), lo=float(estimate.lo[j]),
                             hi=float(estimate.hi[j]), budget=budget, **common))
    return out


def _by_problem(rows: Sequence[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["row_id"]].append(row)
    return groups


def at_k_points(series: Series, scheme: str, seed: int = 0, n_boot: int = 2000) -> list[Point]:
    """pass@k, maj@k and best@k for k = 1, 2, 4, ... <= samples, at every budget; CIs by problem."""
    if series.samples < 2:
        return []
    ks = [2**i for i in range(int(math.log2(series.samples)) + 1)]
    out = []
    for budget in series.budgets:
        groups = list(_by_problem(series.at(budget)).values())
        for metric in ("pass@k", "maj@k", "best@k"):
            table = np.array([[_at_k(metric, group, k) for k in ks] for group in groups])
            estimate = metrics.bootstrap_ci(table, n_boot=n_boot, level=CONFIDENCE_LEVEL, seed=seed)
            out += [Point(series=series.label, metric=metric, x=float(k), y=float(estimate.mean[i]),
                          lo=float(estimate.lo[i]), hi=float(estimate.hi[i]), budget=budget, k=k,
                          n_problems=len(groups), samples=series.samples, scheme=scheme) for i, k in enumerate(ks)]
    return out


def _at_k(metric: str, group: list[dict], k: int) -> float:
    if len(group) < k:
        return math.nan
    correct = [is_correct(row) for row in group]
    if metric == "pass@k":  # best-of-k picked by the verifier itself
        return metrics.pass_at_k(len(group), sum(correct), k)
    if metric == "best@k":  # picked by the model's own confidence: mean logprob of its sampled tokens
        return metrics.best_of_n([confidence_score(row) for row in group], correct, k)
    return metrics.maj_at_k([answer_key(row) for row in group], correct, k)


def confidence_score(row: dict) -> float:
    """The model's mean log-probability per sampled token: a verifier-free score for best-of-N."""
    return row.get("sum_logprob", 0.0) / max(row.get("sampled_tokens", 0), 1)


def confidence_of(rows: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Agreement confidence and correctness of every sample, problem by problem."""
    confidence, correct = [], []
    for group in _by_problem(rows).values():
        confidence += list(metrics.agreement_confidence([answer_key(row) for row in group]))
        correct += [is_correct(row) for row in group]
    return np.array(confidence), np.array(correct)


def risk_points(series: Series, scheme: str) -> list[Point]:
    """The risk-coverage curve at the largest budget (agreement confidence; needs samples > 1)."""
    if series.samples < 2:
        return []
    budget = series.budgets[-1]
    confidence, correct = confidence_of(series.at(budget))
    coverage, risk = metrics.risk_coverage(confidence, correct)
    common = dict(series=series.label, budget=budget, n_problems=len(series.problems), samples=series.samples,
                  scheme=scheme)
    area = Point(metric="aurc", x=1.0, y=metrics.aurc(confidence, correct), **common)  # shown in the legend
    return [Point(metric="risk", x=float(c), y=float(r), **common) for c, r in zip(coverage, risk)] + [area]


def s1_numbers(series: Series) -> dict:
    """s1's Control (traces within their budget), Scaling (mean pairwise slope) and Performance (best accuracy)."""
    accuracy = [float(np.mean([is_correct(row) for row in series.at(b)])) for b in series.budgets]
    within = [row["thinking_tokens"] <= row["budget"] for row in series.rows]
    return {"control": float(np.mean(within)),
            "scaling": metrics.scaling(spent_tokens(series), accuracy) if len(accuracy) > 1 else math.nan,
            "performance": metrics.performance(accuracy)}


def headline(rows: Sequence[dict], seed: int = 0) -> list[dict]:
    """One table row per (series, budget): the numbers a sweep prints at its end."""
    table = []
    for series in series_of(rows):
        points = {(p.metric, p.budget): p for p in curve_points(series, "", seed=seed)}
        for budget in series.budgets:
            at = series.at(budget)
            rates = metrics.outcome_rates([r["verdict"]["outcome"] for r in at], [r["verdict"]["hedged"] for r in at],
                                          [r["score"] for r in at])
            accuracy = points["accuracy", budget]
            line = {"model": series.label, "B": budget,
                    "think": f"{np.mean([r['thinking_tokens'] for r in at]):.0f}",
                    "cap": f"{np.mean([r['capped'] for r in at]):.0%}",
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


def before_after(rows: Sequence[dict], seed: int = 0) -> list[dict]:
    """Per budget: the first curve (before training) against the last (after), on the same problems.

    Accuracy of each, their difference with a paired bootstrap interval over problems
    (``metrics.bootstrap_difference``: per-problem differences, so problem difficulty
    cancels), and, where some rows are unanswerable, the abstain rate on answerable
    and on unanswerable rows for each (what the hedge recipe is judged by).
    """
    curves = series_of(rows)
    if len(curves) < 2:
        return []
    before, after = curves[0], curves[-1]
    shared = sorted(set(before.problems) & set(after.problems))
    if not shared:  # runs over other questions: no paired change to measure (the curves still show each)
        return []
    table = []
    for budget in sorted(set(before.budgets) & set(after.budgets)):
        def correct(series):
            at = [r for r in series.at(budget) if r["row_id"] in shared]
            by = _by_problem(at)
            return np.array([np.mean([is_correct(r) for r in by[p]]) for p in shared])

        a, b = correct(before), correct(after)
        change = metrics.bootstrap_difference(b, a, seed=seed)
        line = {"budget": budget, "before": before.label, "after": after.label, "problems": len(shared),
                "accuracy_before": float(a.mean()), "accuracy_after": float(b.mean()),
                "change": float(change.mean), "change_lo": float(change.lo), "change_hi": float(change.hi),
                "level": change.level}
        def answerable(row: dict) -> bool:
            return row.get("row", {}).get("answerable", True) is not False

        if not all(answerable(r) for r in after.at(budget)):
            for name, series in (("before", before), ("after", after)):
                for kind, flag in (("answerable", True), ("unanswerable", False)):
                    picked = [r for r in series.at(budget) if answerable(r) == flag]
                    line[f"abstain_{kind}_{name}"] = float(np.mean(
                        [r["verdict"]["outcome"] == "abstain" for r in picked])) if picked else None
        table.append(line)
    return table


def calibration(series: Series) -> list[dict]:
    """Per budget: outcome rates, and with samples > 1 ECE, Brier score and AURC of agreement confidence."""
    out = []
    for budget in series.budgets:
        at = series.at(budget)
        rates = metrics.outcome_rates([r["verdict"]["outcome"] for r in at], [r["verdict"]["hedged"] for r in at],
                                      [r["score"] for r in at])
        line = {"budget": budget, **rates.__dict__}
        if series.samples > 1:
            confidence, correct = confidence_of(at)
            line.update(ece=metrics.expected_calibration_error(confidence, correct),
                        brier=metrics.brier_score(confidence, correct), aurc=metrics.aurc(confidence, correct))
        out.append(line)
    return out


# ------------------------------------------------------------------ a run's figures


def plot_runs(rows: Sequence[dict], out_dir, scheme: str = "default", fit: bool = False, seed: int = 0) -> dict:
    """Every figure of one sweep (or several overlaid) and a ``summary.json``; returns the summary.

    Writes ``accuracy`` (with the gold log-probability panel where measured), ``at_k``
    and ``risk_coverage`` (samples > 1), ``training`` (accuracy per budget against the
    training step, with the learning-rate schedule's changes, when a run's checkpoints
    were swept) and ``model_size`` (when models of several sizes were), each as PNG,
    SVG and CSV.
    """
    from pathlib import Path

    from . import plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    all_series = series_of(rows)
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
    training_files, summary["training"] = _training_plot(all_series, points, out_dir)
    files += training_files + _size_plot(all_series, points, out_dir)
    summary["headline"] = headline(rows, seed=seed)
    summary["files"] = [str(path) for path in files]
    text = json.dumps(finite_or_null(summary), indent=2, default=jsonable, allow_nan=False)
    (out_dir / "summary.json").write_text(text + "\n")
    return summary


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
    run_dir = stepped[0].rows[0].get("run_dir")
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

    sized = {s.label: s.rows[0].get("parameters") for s in all_series if s.step is None}
    sized = {label: n for label, n in sized.items() if n}
    if len(sized) < 2 or max(sized.values()) < SIZE_RATIO * min(sized.values()):
        return []  # one size: adapters (LoRA adds ~1-5%) or fine-tunes of one model are not a scaling curve
    curve = sorted((replace(p, series=f"B={p.budget}", x=sized[p.series] / 1e6)
                    for p in points if p.metric == "accuracy" and p.series in sized), key=lambda p: p.x)
    return plots.plot_curve(curve, out_dir / "model_size", xlabel="parameters (millions; log2 axis)",
                            ylabel="accuracy (95% CI)", log_x=True, title="accuracy at each thinking budget by model size")


def label_rows(rows: list[dict], run_dir, overlaid: bool) -> list[dict]:
    """Overlaid runs name their series ``RUN: model``, so two runs of one model stay two curves."""
    if not overlaid:
        return rows
    from pathlib import Path

    return [{**row, "series": f"{Path(run_dir).name}: {row['model']}"} for row in rows]


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
