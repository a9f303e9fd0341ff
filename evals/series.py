"""From stored sweep traces to the series and points a paper reports.

``rlcot.evals.sweep`` stores one trace per (model, task row, sample, budget); this module groups
them into series (one per model or checkpoint, and per forcing mode: a "Wait"-extended
budget is another curve, ``+Wait``, and so is a budget the prompt stated, ``+stated``)
and computes, with the estimators of ``rlcot.evals.metrics``,
``rlcot.evals.intervals`` and ``rlcot.evals.outcomes`` (the tables and figures built from
these are ``rlcot.evals.analysis``'s):

- accuracy per budget with a paired bootstrap CI resampled by problem: budgets share
  traces (a budget's trace is a fork of the next one's), so the points of one curve are
  not independent and each resample draws the same problems for all of them;
- the x-axis s1 plots, the mean thinking tokens actually spent, the budget kept beside;
- the gold answer's mean log-probability (teacher-forced on the forked caches), the continuous metric;
- pass@k (best-of-k picked by the verifier), maj@k, and best@k (best-of-k picked by
  the model's mean token log-probability, a verifier-free score) for k = 1, 2, 4, ...
  up to the samples drawn (unbiased, exact);
- with samples > 1, agreement-based confidence and the risk-coverage curve;
- for think longer or sample more (``rlcot.evals.compute``): the mean tokens generated
  per sample at each budget, and per-problem pass@k / maj@k so two settings' difference
  is bootstrapped paired by problem;
- s1's Control, Scaling and Performance (s1, section 3.2) per series. Control, the share
  of traces whose thinking stayed within the budget, is trivially 1 under forcing; on a
  ``+stated`` curve (forced only at a slack above B) it measures how well the model obeys.

Overlaid runs name their curves with ``label_runs``: by the model, and by the run only
where two runs swept one model (``run_labels`` says how).

Answer keys for voting are ``(verdict answer, outcome)``: the verifier's reading of
the answer, kept apart by outcome so two spellings the verifier judged differently
never merge; an unparsed sample has no key and never votes.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from rlcot.records import ScoredTrace

from . import intervals, metrics, outcomes
from .points import Point

CONFIDENCE_LEVEL = 0.95
MODE_SUFFIXES = {"extend": " +Wait", "stated": " +stated"}  # a curve per forcing mode: the label's suffix


@dataclass(frozen=True)
class Series:
    """The traces of one curve: one model (or checkpoint) under one forcing mode."""

    label: str
    traces: tuple[ScoredTrace, ...]

    @property
    def budgets(self) -> list[int]:
        return sorted({trace.budget for trace in self.traces})

    @property
    def problems(self) -> list[str]:
        return sorted({trace.row_id for trace in self.traces})

    @property
    def samples(self) -> int:
        return max(trace.sample for trace in self.traces) + 1

    @property
    def step(self) -> int | None:
        return self.traces[0].step

    def at(self, budget: int) -> list[ScoredTrace]:
        return [trace for trace in self.traces if trace.budget == budget]


def series_of(traces: Iterable[ScoredTrace]) -> list[Series]:
    """Rows grouped into curves, in order of first appearance (checkpoints by step).

    A curve never pools traces swept with different settings (``rlcot.store.SETTINGS``:
    task, temperature, seed, ...). A sweep refuses to write them into one directory, but
    an older version did not: such traces are split into one curve per setting, each
    labelled with the settings that tell them apart (``m [temperature=0.7]``).
    """
    groups: dict[str, list[ScoredTrace]] = defaultdict(list)
    for trace in traces:
        groups[trace.model + MODE_SUFFIXES.get(trace.mode, "")].append(trace)
    split = {label + suffix: part for label, group in groups.items() for suffix, part in _by_settings(group)}
    ordered = sorted(split.items(), key=lambda item: (item[1][0].step is None, item[1][0].step or 0))
    return [Series(label, tuple(group)) for label, group in ordered]


def run_labels(models_by_run: Sequence[tuple[str, Iterable[str]]]) -> list[dict[str, str]]:
    """Overlaid runs (``rlcot plot RUN_A RUN_B``): per run, each model's curve label, saying each thing once.

    ``models_by_run``: (the run directory as given, the model labels its traces carry).
    A model swept in one run only keeps its own label: the run's name would repeat it
    ("smollm2-135m: smollm2-135m") or name the same weights twice ("train@last:
    train@10"). A model swept in several runs needs the run to tell its curves apart:
    ``RUN: model``, or ``RUN`` alone where the model is already a word of the run's name
    (``smollm2-135m-hot``); runs of one name in different folders are named by their path.
    """
    runs = [(str(run), list(dict.fromkeys(models))) for run, models in models_by_run]
    seen: dict[str, int] = defaultdict(int)
    for _, models in runs:
        for model in models:
            seen[model] += 1
    names = [Path(run).name or run for run, _ in runs]
    out = []
    for (run, models), name in zip(runs, names):
        if names.count(name) > 1:
            name = run
        labels = {model: model if seen[model] == 1 else _with_run(name, model) for model in models}
        clashing = {label for label in labels.values() if list(labels.values()).count(label) > 1}
        out.append({model: f"{name}: {model}" if label in clashing else label for model, label in labels.items()})
    return out


def _with_run(run: str, model: str) -> str:
    if run == model or re.search(rf"(?<![A-Za-z0-9]){re.escape(model)}(?![A-Za-z0-9])", run):
        return run
    return f"{run}: {model}"


def label_runs(runs: Sequence[tuple[str | Path, Sequence[ScoredTrace]]]) -> list[list[ScoredTrace]]:
    """Each run's traces with their model relabelled by ``run_labels`` (one run: as they are)."""
    if len(runs) < 2:
        return [list(traces) for _, traces in runs]
    labels = run_labels([(str(run), (trace.model for trace in traces)) for run, traces in runs])
    return [[trace.with_context(model=names[trace.model]) if names[trace.model] != trace.model else trace
             for trace in traces] for (_, traces), names in zip(runs, labels)]


def _by_settings(traces: list[ScoredTrace]) -> list[tuple[str, list[ScoredTrace]]]:
    """``[(label suffix, traces)]``: one part per setting the traces record, ``[("", traces)]`` when they agree.

    Settings are compared where every trace records them (an older trace lacks some).
    """
    from rlcot.store import SETTING_NAMES, describe_setting, trace_settings

    settings = [trace_settings(trace) for trace in traces]
    if all(s == settings[0] for s in settings):  # the usual case, and cheap: no serialising
        return [("", traces)]
    shared = [name for name in settings[0] if all(name in s for s in settings)]
    parts: dict[str, list[int]] = defaultdict(list)
    for i, recorded in enumerate(settings):
        parts[json.dumps([recorded[name] for name in shared], sort_keys=True, default=str)].append(i)
    if len(parts) == 1:
        return [("", traces)]
    varying = [name for name in shared
               if len({json.dumps(s[name], sort_keys=True, default=str) for s in settings}) > 1]
    out = []
    for members in parts.values():
        first = settings[members[0]]
        named = ", ".join(f"{SETTING_NAMES.get(n, n)}={describe_setting(n, first[n])}" for n in varying)
        out.append((f" [{named}]", [traces[i] for i in members]))
    return out


def is_correct(trace: ScoredTrace) -> bool:
    return trace.verdict.outcome == "correct"


def answer_key(trace: ScoredTrace):
    verdict = trace.verdict
    if verdict.outcome == "unparsed":
        return None
    return (str(verdict.answer).strip(), verdict.outcome)


def per_problem(series: Series, value) -> np.ndarray:
    """``[problem, budget]`` mean over samples of ``value(trace)``; NaN where a cell has no trace or value."""
    problems, budgets = series.problems, series.budgets
    p_index = {p: i for i, p in enumerate(problems)}
    b_index = {b: j for j, b in enumerate(budgets)}
    total = np.zeros((len(problems), len(budgets)))
    count = np.zeros_like(total)
    for trace in series.traces:
        v = value(trace)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        i, j = p_index[trace.row_id], b_index[trace.budget]
        total[i, j] += v
        count[i, j] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def spent_tokens(series: Series) -> list[float]:
    """The x-axis: mean thinking tokens actually spent at each budget (s1's)."""
    return [float(np.mean([trace.thinking_tokens for trace in series.at(b)])) for b in series.budgets]


def generated_tokens(series: Series) -> dict[int, float]:
    """Mean tokens the model generated per sample at each budget: thinking plus answer (``compute``'s cost)."""
    return {b: float(np.mean([trace.thinking_tokens + trace.answer_tokens for trace in series.at(b)]))
            for b in series.budgets}


def at_k_by_problem(series: Series, metric: str, budget: int, k: int) -> np.ndarray:
    """``metric`` (pass@k, maj@k, best@k) of each problem at ``budget`` in ``series.problems`` order; NaN: absent."""
    groups = _by_problem(series.at(budget))
    return np.array([_at_k(metric, groups[p], k) if p in groups else math.nan for p in series.problems])


def paired_at_k(series: Series, metric: str, seed: int = 0, n_boot: int = 2000):
    """``paired(think, sample)`` for ``compute.segments``: the CI of their ``metric`` difference, paired by problem."""
    tables: dict[tuple[int, int], np.ndarray] = {}  # a setting is in several pairs: its estimates are computed once

    def values(setting) -> np.ndarray:
        key = (setting.budget, setting.k)
        if key not in tables:
            tables[key] = at_k_by_problem(series, metric, *key)
        return tables[key]

    def paired(think, sample) -> tuple[float, float]:
        change = intervals.bootstrap_difference(values(sample), values(think), n_boot=n_boot,
                                                level=CONFIDENCE_LEVEL, seed=seed)
        return float(change.lo), float(change.hi)

    return paired


def curve_points(series: Series, scheme: str, seed: int = 0, n_boot: int = 2000) -> list[Point]:
    """Accuracy (and the gold log-probability, where measured) per budget, with paired CIs."""
    xs = spent_tokens(series)
    common = dict(series=series.label, n_problems=len(series.problems), samples=series.samples, scheme=scheme)
    out = []
    for metric, value in (("accuracy", lambda r: float(is_correct(r))), ("gold_logprob", lambda r: r.gold_logprob)):
        table = per_problem(series, value)
        if np.isnan(table).all():
            continue
        estimate = intervals.bootstrap_ci(table, n_boot=n_boot, level=CONFIDENCE_LEVEL, seed=seed)
        for j, budget in enumerate(series.budgets):
            out.append(Point(metric=metric, x=xs[j], y=float(estimate.mean[j]), lo=float(estimate.lo[j]),
                             hi=float(estimate.hi[j]), budget=budget, **common))
    return out


def _by_problem(traces: Sequence[ScoredTrace]) -> dict[str, list[ScoredTrace]]:
    groups: dict[str, list[ScoredTrace]] = defaultdict(list)
    for trace in traces:
        groups[trace.row_id].append(trace)
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
            estimate = intervals.bootstrap_ci(table, n_boot=n_boot, level=CONFIDENCE_LEVEL, seed=seed)
            out += [Point(series=series.label, metric=metric, x=float(k), y=float(estimate.mean[i]),
                          lo=float(estimate.lo[i]), hi=float(estimate.hi[i]), budget=budget, k=k,
                          n_problems=len(groups), samples=series.samples, scheme=scheme) for i, k in enumerate(ks)]
    return out


def _at_k(metric: str, group: list[ScoredTrace], k: int) -> float:
    if len(group) < k:
        return math.nan
    correct = [is_correct(trace) for trace in group]
    if metric == "pass@k":  # best-of-k picked by the verifier itself
        return metrics.pass_at_k(len(group), sum(correct), k)
    if metric == "best@k":  # picked by the model's own confidence: mean logprob of its sampled tokens
        return metrics.best_of_n([confidence_score(trace) for trace in group], correct, k)
    return metrics.maj_at_k([answer_key(trace) for trace in group], correct, k)


def confidence_score(trace: ScoredTrace) -> float:
    """The model's mean log-probability per sampled token: a verifier-free score for best-of-N."""
    return trace.sum_logprob / max(trace.sampled_tokens, 1)


def confidence_of(traces: Sequence[ScoredTrace]) -> tuple[np.ndarray, np.ndarray]:
    """Agreement confidence and correctness of every sample, problem by problem."""
    confidence, correct = [], []
    for group in _by_problem(traces).values():
        confidence += list(outcomes.agreement_confidence([answer_key(trace) for trace in group]))
        correct += [is_correct(trace) for trace in group]
    return np.array(confidence), np.array(correct)


def risk_points(series: Series, scheme: str) -> list[Point]:
    """The risk-coverage curve at the largest budget (agreement confidence; needs samples > 1)."""
    if series.samples < 2:
        return []
    budget = series.budgets[-1]
    confidence, correct = confidence_of(series.at(budget))
    coverage, risk = outcomes.risk_coverage(confidence, correct)
    common = dict(series=series.label, budget=budget, n_problems=len(series.problems), samples=series.samples,
                  scheme=scheme)
    area = Point(metric="aurc", x=1.0, y=outcomes.aurc(confidence, correct), **common)  # shown in the legend
    return [Point(metric="risk", x=float(c), y=float(r), **common) for c, r in zip(coverage, risk)] + [area]


def s1_numbers(series: Series) -> dict:
    """s1's Control (traces within their budget), Scaling (mean pairwise slope) and Performance (best accuracy)."""
    accuracy = [float(np.mean([is_correct(trace) for trace in series.at(b)])) for b in series.budgets]
    within = [trace.thinking_tokens <= trace.budget for trace in series.traces]
    return {"control": float(np.mean(within)),
            "scaling": metrics.scaling(spent_tokens(series), accuracy) if len(accuracy) > 1 else math.nan,
            "performance": metrics.performance(accuracy)}
