"""Figures of a sweep, drawn from one long-form table of points, written as PNG, SVG and CSV.

Another module turns scored traces into ``Point`` rows (one plotted point each: a
series, a metric, x, y and its confidence interval; ``points`` defines them and their
CSV); this one only draws them. Every figure is written three ways from one stem:
``stem.png`` (150 dpi, for reading), ``stem.svg`` (text kept as text, for a paper) and
``stem.csv``, the points actually drawn (``points.write_points_csv``), so any number on
a figure can be looked up and the figure redrawn without the sweep.

Each figure is built by a pure ``*_chart`` function returning a ``Chart`` (the
matplotlib ``Figure``, the points drawn, how many were skipped) and written by
``save_chart``; ``plot_*`` is the two together. Figures are ``matplotlib.figure.Figure``
objects, never pyplot's: no global figure state and no display, and saving picks Agg.
All the drawing goes through ``_draw_lines`` (one line per group of points, its CI as
a band), so the figures differ only in which points they keep and how they label
them; the think-longer-or-sample-more figure alone draws its own panels.

Choices a reader of the figures should know:

- **x = 0 on a log axis.** Thinking tokens are drawn on ``symlog`` with base 2 and
  ``linthresh=1``: log2 above one token, linear in [0, 1]. Budget 0 spends 0 tokens,
  which a log axis would drop; here 0, 1, 2, 4, ... are evenly spaced, and the x label
  says the scale is linear below 1 so nobody reads the first gap as a doubling.
- **Spent tokens, not the cap.** x is the mean thinking tokens a trace actually spent;
  the cap it ran under is written beside each point (``B=64``), as s1 (Muennighoff
  et al. 2025) plots it: a small model often stops well short of its cap.
- **A continuous metric beside accuracy.** When ``gold_logprob`` points exist the
  accuracy figure gets a second panel: the log-probability of the gold answer,
  teacher-forced after the answer cue. A jump in accuracy with a smooth rise here is
  a threshold artefact of the metric, not a new ability (Schaeffer et al. 2023,
  "Are emergent abilities of large language models a mirage?").
- **Non-finite values** (a metric with no defined value, e.g. a mean over zero traces)
  are left out of the figure and its CSV; their count goes under the x label rather
  than into a warning, so the figure says it is incomplete.

- **Think longer or sample more** (``compute_chart``, the math in ``compute``): x is the
  tokens a (budget, k) costs per problem, not thinking tokens, on the same log2 axis;
  its panels are one per (series, metric), since one strip of winners per panel reads
  where overlaid strips would not.

Colours come from tab10 (colour-blind-safe) by series, in order of first appearance,
so a series keeps its colour across panels; line style tells metrics apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullLocator, SymmetricalLogLocator

from . import compute
from .compute import Segment
from .points import Point, write_points_csv


@dataclass(frozen=True)
class Chart:
    """A built figure, the points it draws (what its CSV holds) and how many non-finite points it left out."""

    figure: Figure
    points: tuple[Point, ...]
    nan_skipped: int = 0


_AT_K_METRICS = ("pass@k", "maj@k", "best@k")  # best@k: best-of-k picked by a score (e.g. the model's confidence)
_LINESTYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_PAPER_RC = {
    "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8.5,
    "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.grid": True, "grid.alpha": 0.3,
    "axes.spines.top": False, "axes.spines.right": False,
    # text stays text in the SVG (editable, searchable); a fixed salt makes the file reproducible
    "svg.fonttype": "none", "svg.hashsalt": "rlcot-plots",
}
_TOKENS_LABEL = "thinking tokens spent (mean per trace; log2 axis)"
_COMPUTE_LABEL = "tokens generated per problem (k × mean per sample; log2 axis)"
_COMPUTE_METRICS = {"maj@k": "majority vote of k samples (no verifier)", "pass@k": "any of k right (an oracle picks)"}
_STRATEGY_COLOURS = {compute.THINK: "tab:blue", compute.SAMPLE: "tab:orange", compute.TIE: "0.55"}

# ---------------------------------------------------------------- public figures

def plot_accuracy(points: Sequence[Point], out_stem: str | Path, fits: Mapping | None = None,
                  lr_changes: Sequence[float] | None = None, title: str | None = None) -> list[Path]:
    """Accuracy (and gold log-prob when present) vs thinking tokens spent; writes PNG, SVG, CSV."""
    return save_chart(accuracy_chart(points, fits, lr_changes, title), out_stem)


def plot_at_k(points: Sequence[Point], out_stem: str | Path, budgets: Sequence[int] | None = None,
              title: str | None = None) -> list[Path]:
    """pass@k and maj@k vs k; writes PNG, SVG, CSV."""
    return save_chart(at_k_chart(points, budgets, title), out_stem)


def plot_risk_coverage(points: Sequence[Point], out_stem: str | Path, title: str | None = None) -> list[Path]:
    """Risk (1 - selective accuracy) vs coverage; writes PNG, SVG, CSV."""
    return save_chart(risk_coverage_chart(points, title), out_stem)


def plot_curve(points: Sequence[Point], out_stem: str | Path, xlabel: str, ylabel: str,
               log_x: bool = False, title: str | None = None, lr_changes: Sequence[float] | None = None) -> list[Path]:
    """Any metric vs any x (samples, model size, training step); writes PNG, SVG, CSV."""
    return save_chart(curve_chart(points, xlabel, ylabel, log_x, title, lr_changes), out_stem)


def plot_compute(points: Sequence[Point], out_stem: str | Path,
                 found: Mapping[tuple[str, str], Sequence[Segment]] | None = None,
                 title: str | None = None) -> list[Path]:
    """maj@k and pass@k vs tokens per problem over every (budget, k), frontier and winners; writes PNG, SVG, CSV."""
    return save_chart(compute_chart(points, found, title), out_stem)


def plot_panels(points: Sequence[Point], out_stem: str | Path, titles: Mapping[str, str] | None = None,
                title: str | None = None) -> list[Path]:
    """One panel per metric vs thinking tokens, side by side on one y scale; writes PNG, SVG, CSV."""
    return save_chart(panels_chart(points, titles, title), out_stem)


def save_chart(chart: Chart, out_stem: str | Path) -> list[Path]:
    """Write ``stem.png``, ``stem.svg`` and ``stem.csv`` (the points drawn); returns the three paths."""
    stem = Path(out_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    # stem.name + suffix, not with_suffix: a stem such as "run.v2" keeps its dot
    png, svg, table = (stem.parent / f"{stem.name}.{ext}" for ext in ("png", "svg", "csv"))
    with matplotlib.rc_context(_PAPER_RC):
        chart.figure.savefig(png, dpi=150, metadata={"Software": None})
        chart.figure.savefig(svg, metadata={"Date": None})
    write_points_csv(chart.points, table)
    return [png, svg, table]


# ---------------------------------------------------------------- chart builders

def accuracy_chart(points: Sequence[Point], fits: Mapping | None = None,
                   lr_changes: Sequence[float] | None = None, title: str | None = None) -> Chart:
    """The accuracy figure: one panel, or two side by side when ``gold_logprob`` points exist.

    ``fits`` maps a series to ``(xs, ys, label)``, drawn dashed in the series' colour
    (fits are curves, not points, so they are not in the CSV). ``lr_changes`` are x
    positions of dotted vertical lines, for when x is the training step.
    """
    accuracy, skipped = _finite(_require(points, ("accuracy",), "plot_accuracy"))
    gold, gold_skipped = _finite([p for p in points if p.metric == "gold_logprob"])
    colours = _colours(points)
    with matplotlib.rc_context(_PAPER_RC):
        figure = Figure(figsize=(10.5 if gold else 6.0, 4.0), layout="constrained")
        axes = figure.subplots(1, 2 if gold else 1, squeeze=False)[0]
        _draw_lines(axes[0], accuracy, ("series", "scheme"), colours, annotate_budgets=True)
        _draw_fits(axes[0], fits or {}, colours)
        axes[0].set_ylabel(_measured("accuracy", accuracy))
        if gold:
            _draw_lines(axes[1], gold, ("series", "scheme"), colours)
            axes[1].set_ylabel(_measured("log p(gold answer), teacher-forced", gold))
            axes[1].set_title("continuous metric", loc="left", fontsize=9, color="0.35")
        for ax in axes:
            _log2_x(ax)
            _draw_lr_changes(ax, lr_changes or ())
            ax.set_xlabel(_with_skipped(_TOKENS_LABEL, skipped + gold_skipped))
        _finish(figure, axes[0], title)
    return Chart(figure, tuple(accuracy + gold), skipped + gold_skipped)


def panels_chart(points: Sequence[Point], titles: Mapping[str, str] | None = None, title: str | None = None) -> Chart:
    """One panel per metric (in order of first appearance) against thinking tokens spent, sharing the y axis.

    For one question asked two ways of the same checkpoints (greedy accuracy and mean@k,
    ``make demo``): a series keeps its colour in every panel and the panels share their
    y scale, so heights compare across them. The metric is what tells a panel's points
    apart in the CSV; ``titles`` maps a metric to its panel's title (default: the metric).
    """
    if not points:
        raise ValueError("panels_chart got no points; pass at least one Point")
    metrics = list(dict.fromkeys(p.metric for p in points))
    colours = _colours(points)
    drawn_all, skipped_all = [], 0
    with matplotlib.rc_context(_PAPER_RC):
        figure = Figure(figsize=(0.6 + 4.4 * len(metrics), 4.2), layout="constrained")
        axes = figure.subplots(1, len(metrics), squeeze=False, sharey=True)[0]
        for ax, metric in zip(axes, metrics):
            drawn, skipped = _finite([p for p in points if p.metric == metric])
            _draw_lines(ax, drawn, ("series", "scheme"), colours, annotate_budgets=True)
            _log2_x(ax)
            ax.set_title((titles or {}).get(metric, metric), loc="left", fontsize=10)
            ax.set_ylabel(_measured(metric, drawn))
            ax.set_xlabel(_with_skipped(_TOKENS_LABEL, skipped))
            ax.yaxis.set_tick_params(labelleft=True)  # sharey hides a right panel's ticks; its label needs them
            drawn_all += drawn
            skipped_all += skipped
        if not drawn_all:
            raise ValueError(f"panels_chart got {skipped_all} points and none has a finite x and y; "
                             "check the metric computation")
        legend_ax = max(axes, key=lambda ax: len(ax.get_legend_handles_labels()[1]))
        _finish(figure, legend_ax, title)
    return Chart(figure, tuple(drawn_all), skipped_all)


def at_k_chart(points: Sequence[Point], budgets: Sequence[int] | None = None, title: str | None = None) -> Chart:
    """pass@k and maj@k vs k: colour by series, line style by metric.

    Only each series' largest budget is drawn unless ``budgets`` names the ones to draw:
    six budgets times two metrics times two series is a legend nobody reads.
    """
    chosen = _at_budgets(_require(points, _AT_K_METRICS, "plot_at_k"), budgets)
    drawn, skipped = _finite(chosen)
    metrics = " / ".join(m for m in _AT_K_METRICS if any(p.metric == m for p in drawn))
    return _single_panel(drawn, skipped, ("series", "metric", "budget", "scheme"), title,
                         xlabel="k (samples per problem; log2 axis)",
                         ylabel=_measured(metrics, drawn), log_x=True)


def risk_coverage_chart(points: Sequence[Point], title: str | None = None) -> Chart:
    """Risk vs coverage, one line per series (and budget); an ``aurc`` point for a line goes in its label."""
    drawn, skipped = _finite(_require(points, ("risk",), "plot_risk_coverage"))
    aurc = {(p.series, p.budget, p.scheme): p.y for p in points if p.metric == "aurc"}
    chart = _single_panel(drawn, skipped, ("series", "budget", "scheme"), title, aurc=aurc,
                          xlabel="coverage (fraction of answers kept, most confident first)",
                          ylabel=_measured("risk = 1 - selective accuracy", drawn))
    chart.figure.axes[0].set_xlim(-0.02, 1.02)  # coverage lives in [0, 1]; show all of it
    lines = {(p.series, p.budget, p.scheme) for p in drawn}
    used = tuple(p for p in points if p.metric == "aurc" and (p.series, p.budget, p.scheme) in lines)
    return Chart(chart.figure, chart.points + used, skipped)


def curve_chart(points: Sequence[Point], xlabel: str, ylabel: str, log_x: bool = False,
                title: str | None = None, lr_changes: Sequence[float] | None = None) -> Chart:
    """Every point drawn, one line per (series, metric, budget, scheme); ``log_x`` as the token axis.

    ``lr_changes``: x positions of the learning-rate schedule's changes (dotted lines),
    when x is the training step: a jump there is the schedule, not emergence.
    """
    if not points:
        raise ValueError("plot_curve got no points; pass at least one Point")
    drawn, skipped = _finite(points)
    if not drawn:
        raise ValueError(f"plot_curve got {skipped} points and none has a finite x and y; check the metric computation")
    chart = _single_panel(drawn, skipped, ("series", "metric", "budget", "scheme"), title,
                          xlabel=xlabel, ylabel=ylabel, log_x=log_x)
    if lr_changes:
        _draw_lr_changes(chart.figure.axes[0], lr_changes)
    return chart


def compute_chart(points: Sequence[Point], found: Mapping[tuple[str, str], Sequence[Segment]] | None = None,
                  title: str | None = None) -> Chart:
    """Think longer or sample more: accuracy against tokens per problem, a panel per (series, metric).

    ``points`` are ``compute.compute_points``: maj@k and pass@k at every (budget, k), x the
    tokens the setting costs per problem. Each panel draws the k = 1 points as the "think
    longer" line (its budgets written beside it), one thin line per budget through k = 2,
    4, ... ("sample more", darker for a larger budget), the frontier as a step line with
    its settings ringed, and along the bottom a strip coloured by the winner at each
    compute level (hatched where the paired CI holds 0). ``found`` maps (series, metric) to
    its ``compute.segments`` (with their CIs); a panel not in it gets segments without CIs.
    """
    drawn, skipped = _finite(_require(points, compute.METRICS, "plot_compute"))
    panels = list(dict.fromkeys((p.series, p.metric) for p in drawn))
    if not panels:
        raise ValueError(f"plot_compute got {skipped} points and none has a finite x and y; "
                         "check the metric computation")
    series = list(dict.fromkeys(s for s, _ in panels))
    metrics = [m for m in compute.METRICS if any(m == metric for _, metric in panels)]
    with matplotlib.rc_context(_PAPER_RC):
        figure = Figure(figsize=(0.8 + 5.0 * len(metrics), 0.9 + 3.6 * len(series)), layout="constrained")
        axes = figure.subplots(len(series), len(metrics), squeeze=False, sharex=True, sharey=True)
        for row, name in enumerate(series):
            for column, metric in enumerate(metrics):
                ax = axes[row][column]
                mine = [p for p in drawn if (p.series, p.metric) == (name, metric)]
                ax.yaxis.set_tick_params(labelleft=True)
                if not mine:
                    ax.set_axis_off()
                    continue
                _draw_compute_panel(ax, mine, (found or {}).get((name, metric)))
                head = f"{name} · {metric}" if len(series) > 1 else metric
                ax.set_title(f"{head}: {_COMPUTE_METRICS[metric]}", loc="left", fontsize=9.5)
                ax.set_ylabel(_measured(f"{metric} accuracy", mine))
                ax.set_xlabel(_with_skipped(_COMPUTE_LABEL, skipped) if row == len(series) - 1 else "")
        low, high = axes[0][0].get_ylim()  # shared: room below the data for the winner strip
        axes[0][0].set_ylim(low - 0.07 * (high - low), high)
        _compute_legend(figure)
        if title:
            figure.suptitle(title)
    return Chart(figure, tuple(drawn), skipped)


def _draw_compute_panel(ax: Axes, points: Sequence[Point], found: Sequence[Segment] | None) -> None:
    """One (series, metric): the lines, the frontier and the winner strip (what it says is ``compute.describe``)."""
    settings = compute.settings(points, points[0].metric)
    think = sorted((p for p in points if p.k == 1), key=lambda p: p.x)
    budgets = sorted({p.budget for p in points})
    shades = matplotlib.colormaps["Oranges"]
    for rank, budget in enumerate(budgets):  # k = 1 starts each line on the think-longer curve
        line = sorted((p for p in points if p.budget == budget), key=lambda p: p.k)
        if len(line) > 1:
            shade = shades(0.45 + 0.5 * rank / max(len(budgets) - 1, 1))
            ax.plot([p.x for p in line], [p.y for p in line], color=shade, marker="s", markersize=3.5, linewidth=1.0,
                    zorder=2)
    if think:
        colour = _STRATEGY_COLOURS[compute.THINK]
        ax.plot([p.x for p in think], [p.y for p in think], color=colour, marker="o", markersize=4.5, linewidth=1.8,
                zorder=3)
        banded = [p for p in think if p.lo is not None and p.hi is not None]
        if banded:
            ax.fill_between([p.x for p in banded], [p.lo for p in banded], [p.hi for p in banded], color=colour,
                            alpha=0.15, linewidth=0)
        _annotate_budgets(ax, think, colour, below=False)
    best = compute.frontier(settings)
    right = max(s.compute for s in settings)
    ax.step([s.compute for s in best] + [right], [s.accuracy for s in best] + [best[-1].accuracy], where="post",
            color="0.1", linewidth=1.1, linestyle="--", zorder=4)
    ax.plot([s.compute for s in best], [s.accuracy for s in best], linestyle="none", marker="o", markersize=9,
            markerfacecolor="none", markeredgecolor="0.1", markeredgewidth=1.0, zorder=4)
    _log2_x(ax)
    segments = found if found is not None else compute.segments(settings)
    for segment in segments:
        end = segment.end if segment.end is not None else right * 1.25
        ax.axvspan(segment.start, end, ymin=0.0, ymax=0.05, color=_STRATEGY_COLOURS[segment.winner],
                   alpha=0.75 if segment.clear else 0.3, hatch=None if segment.clear else "////", linewidth=0,
                   zorder=1)


def _compute_legend(figure: Figure) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    shade = matplotlib.colormaps["Oranges"](0.7)
    handles = [
        Line2D([], [], color=_STRATEGY_COLOURS[compute.THINK], marker="o", linewidth=1.8,
               label="think longer: k = 1 at each budget B"),
        Line2D([], [], color=shade, marker="s", markersize=3.5, linewidth=1.0,
               label="sample more: k = 1, 2, 4, ... at one B (darker: larger B)"),
        Line2D([], [], color="0.1", linestyle="--", marker="o", markerfacecolor="none", markersize=8,
               label="compute-optimal frontier (best at <= these tokens)"),
        Patch(color=_STRATEGY_COLOURS[compute.THINK], alpha=0.75, label="strip: think longer wins"),
        Patch(color=_STRATEGY_COLOURS[compute.SAMPLE], alpha=0.75, label="strip: sample more wins"),
        Patch(color=_STRATEGY_COLOURS[compute.TIE], alpha=0.75, label="strip: equal"),
        Patch(facecolor="white", edgecolor="0.4", hatch="////", label="hatched: 0 within the paired 95% CI"),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False)


def _single_panel(drawn: list[Point], skipped: int, line_fields: tuple[str, ...], title: str | None, *,
                  xlabel: str, ylabel: str, log_x: bool = False, aurc: Mapping | None = None) -> Chart:
    with matplotlib.rc_context(_PAPER_RC):
        figure = Figure(figsize=(6.0, 4.0), layout="constrained")
        ax = figure.subplots()
        _draw_lines(ax, drawn, line_fields, _colours(drawn), aurc=aurc or {})
        if log_x:
            _log2_x(ax)
        ax.set_xlabel(_with_skipped(xlabel, skipped))
        ax.set_ylabel(ylabel)
        _finish(figure, ax, title)
    return Chart(figure, tuple(drawn), skipped)


# ---------------------------------------------------------------- selection

def _require(points: Sequence[Point], metrics: Sequence[str], caller: str) -> list[Point]:
    """The points of ``metrics``, or a ValueError naming the metrics that were there."""
    kept = [p for p in points if p.metric in metrics]
    if not kept:
        present = sorted({p.metric for p in points})
        raise ValueError(f"{caller} needs points with metric {' or '.join(map(repr, metrics))}, got metrics "
                         f"{present or 'none (no points)'}; pass those rows, or draw others with plot_curve")
    return kept


def _finite(points: Sequence[Point]) -> tuple[list[Point], int]:
    kept = [p for p in points if math.isfinite(p.x) and math.isfinite(p.y)]
    return kept, len(points) - len(kept)


def _at_budgets(points: list[Point], budgets: Sequence[int] | None) -> list[Point]:
    if budgets is not None:
        wanted = set(budgets)
        kept = [p for p in points if p.budget in wanted]
        if not kept:
            present = sorted({p.budget for p in points}, key=lambda b: (b is None, b))
            raise ValueError(f"plot_at_k: no pass@k/maj@k points at budgets {list(budgets)}; "
                             f"the points have budgets {present}")
        return kept
    largest: dict[str, int] = {}
    for p in points:
        if p.budget is not None:
            largest[p.series] = max(p.budget, largest.get(p.series, p.budget))
    # a series whose points carry no budget keeps them all: there is no cap to choose among
    return [p for p in points if p.budget == largest.get(p.series)]


def _measured(what: str, points: Sequence[Point]) -> str:
    # the sample size on its own line: beside the metric it outgrows a 4-inch-tall axis
    return f"{what}\n({_sample_size(points)})"


def _sample_size(points: Sequence[Point]) -> str:
    """'64 problems × 4 samples, 95% CI' from what the points carry (a range when they differ)."""
    problems = sorted({p.n_problems for p in points if p.n_problems})
    samples = sorted({p.samples for p in points})
    parts = []
    if problems:
        per = "" if samples == [1] else f" × {_span(samples)} samples"
        parts.append(f"{_span(problems)} problems{per}")
    if any(p.lo is not None and p.hi is not None for p in points):
        parts.append("95% CI")
    return ", ".join(parts) or "sample size not recorded"


def _span(values: Sequence[int]) -> str:
    return f"{values[0]}" if len(values) == 1 else f"{values[0]}–{values[-1]}"


def _with_skipped(label: str, skipped: int) -> str:
    return label if not skipped else f"{label}\n({skipped} non-finite point{'s' * (skipped != 1)} not drawn)"


# ---------------------------------------------------------------- drawing

def _colours(points: Sequence[Point]) -> dict[str, tuple]:
    palette = matplotlib.colormaps["tab10"].colors
    order = list(dict.fromkeys(p.series for p in points))
    return {series: palette[i % len(palette)] for i, series in enumerate(order)}


def _draw_lines(ax: Axes, points: Sequence[Point], line_fields: tuple[str, ...], colours: Mapping[str, tuple],
                annotate_budgets: bool = False, aurc: Mapping | None = None) -> None:
    """One line per distinct value of ``line_fields``: markers, a CI band where lo/hi exist."""
    groups: dict[tuple, list[Point]] = {}
    for p in points:
        groups.setdefault(tuple(getattr(p, name) for name in line_fields), []).append(p)
    varying = [name for i, name in enumerate(line_fields) if len({key[i] for key in groups}) > 1]
    metrics = list(dict.fromkeys(p.metric for p in points))
    budgets = list(dict.fromkeys(p.budget for p in points))
    for index, (key, members) in enumerate(groups.items()):
        members = sorted(members, key=lambda p: p.x)
        first = members[0]
        colour = colours[first.series]
        line_aurc = (aurc or {}).get((first.series, first.budget, first.scheme))
        label = _label(dict(zip(line_fields, key)), varying, line_aurc)
        marker = _MARKERS[budgets.index(first.budget) % len(_MARKERS)] if "budget" in line_fields else "o"
        xs, ys = [p.x for p in members], [p.y for p in members]
        ax.plot(xs, ys, color=colour, marker=marker, markersize=4.5, linewidth=1.6, label=label,
                linestyle=_LINESTYLES[metrics.index(first.metric) % len(_LINESTYLES)])
        banded = [p for p in members if p.lo is not None and p.hi is not None]
        if banded:
            ax.fill_between([p.x for p in banded], [p.lo for p in banded], [p.hi for p in banded],
                            color=colour, alpha=0.18, linewidth=0)
        if annotate_budgets:
            _annotate_budgets(ax, members, colour, below=index % 2 == 1)


def _label(values: Mapping[str, object], varying: Sequence[str], aurc: float | None) -> str:
    """The series, its budget, then what else tells this line from the others.

    A metric or scheme shared by every line is noise in the legend (the axis says it);
    the budget is not: a curve drawn at one cap should say which.
    """
    parts = [str(values["series"])] if "series" in values else []
    if values.get("budget") is not None:
        parts.append(f"B={values['budget']}")
    for name in varying:
        if name in ("metric", "scheme"):
            parts.append(str(values[name]) if name == "metric" else f"[{values[name]}]")
    if aurc is not None:
        parts.append(f"(AURC {aurc:.3f})")
    return " ".join(parts)


def _annotate_budgets(ax: Axes, members: Sequence[Point], colour, below: bool) -> None:
    # alternate series above/below their points: two series at budget 0 share x = 0
    offset, align = ((0, -7), "top") if below else ((0, 6), "bottom")
    # budgets whose points coincide (a model that stops thinking before every cap) share one label,
    # "B=32,64,128", instead of printing over each other
    groups: list[list[Point]] = []
    for p in sorted((p for p in members if p.budget is not None), key=lambda p: p.budget):
        last = groups[-1][-1] if groups else None
        if last is not None and math.isclose(p.x, last.x, rel_tol=0.05, abs_tol=0.5) and \
                math.isclose(p.y, last.y, rel_tol=0.02, abs_tol=0.01):
            groups[-1].append(p)
        else:
            groups.append([p])
    for group in groups:
        ax.annotate("B=" + ",".join(str(p.budget) for p in group), (group[0].x, group[0].y), xytext=offset,
                    textcoords="offset points", ha="center", va=align, fontsize=6.5, color=colour)


def _draw_fits(ax: Axes, fits: Mapping, colours: Mapping[str, tuple]) -> None:
    for series, (xs, ys, label) in fits.items():
        if series not in colours:
            raise ValueError(f"fits names series {series!r}, which has no points (series: {sorted(colours)}); "
                             "key fits by a series that is plotted")
        ax.plot(xs, ys, color=colours[series], linestyle="--", linewidth=1.1, alpha=0.9,
                label=f"{series}: {label}", zorder=1.5)


def _draw_lr_changes(ax: Axes, positions: Sequence[float]) -> None:
    for i, x in enumerate(positions):
        ax.axvline(x, color="0.4", linestyle=":", linewidth=1.0, label="LR change" if i == 0 else None)


def _log2_x(ax: Axes) -> None:
    # symlog, base 2, linthresh 1: log2 above one token and linear in [0, 1], so x = 0
    # (budget 0) stays on the axis. matplotlib stretches the linear part by
    # linscale / (1 - 1/base); linscale 0.5 makes [0, 1] exactly as wide as one doubling
    ax.set_xscale("symlog", base=2, linthresh=1, linscale=0.5)
    ax.xaxis.set_major_locator(SymmetricalLogLocator(base=2, linthresh=1))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(_tick_label))


def _tick_label(value: float, _position=None) -> str:
    # plain numbers (0, 1, 2, ..., 256), not 2^k: readers compare them to budgets
    if value == int(value) and abs(value) < 1e5:
        return str(int(value))
    return f"{value:.3g}"


def _finish(figure: Figure, legend_ax: Axes, title: str | None) -> None:
    """One legend, from ``legend_ax`` (the panel holding every line, fits included), and the title."""
    handles, labels = legend_ax.get_legend_handles_labels()
    if len(labels) > 4:  # many lines: the legend goes outside, beside the data rather than over it,
        # and the figure widens by the legend's room so the axes keep their size
        figure.set_figwidth(figure.get_figwidth() + 3.0)
        figure.legend(handles, labels, loc="outside right upper", frameon=False)
    elif labels:
        legend_ax.legend(loc="best", frameon=True, framealpha=0.85)
    if title:
        figure.suptitle(title)
