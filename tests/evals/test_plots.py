"""rlcot.evals.plots: the points CSV round-trips, each figure writes PNG/SVG/CSV of what it draws."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import replace

import numpy as np
import pytest
from matplotlib.image import imread
from typer.testing import CliRunner

from rlcot.evals import compute
from rlcot.evals.plots import (accuracy_chart, at_k_chart, compute_chart, panels_chart, plot_accuracy, plot_at_k,
                               plot_compute, plot_curve, plot_panels, plot_risk_coverage, risk_coverage_chart)
from rlcot.evals.points import Point, read_points_csv, write_points_csv
from rlcot.evals.series import run_labels
from rlcot.cli import app
from tests.evals.test_analysis import make_rows

BUDGETS = [0, 16, 32, 64, 128, 256]


def sweep_points(series: str, lift: float = 0.0, gold: bool = True) -> list[Point]:
    """A small sweep of one series: accuracy (and gold log-prob) per budget, x = tokens spent."""
    points = []
    for budget in BUDGETS:
        spent = 0.6 * budget
        accuracy = 0.1 + lift + 0.05 * math.log2(1 + spent)
        points.append(Point(series, "accuracy", spent, accuracy, accuracy - 0.05, accuracy + 0.05, budget, None, 64, 4))
        if gold:
            logprob = -5 + 0.4 * math.log2(1 + spent)
            points.append(Point(series, "gold_logprob", spent, logprob, None, None, budget, None, 64, 4))
    return points


def at_k_points(series: str) -> list[Point]:
    return [Point(series, metric, k, 0.2 + 0.05 * k + budget / 1000, budget=budget, k=k, n_problems=32, samples=16)
            for metric in ("pass@k", "maj@k") for budget in (64, 256) for k in (1, 2, 4, 8)]


def compute_points(series: str, lift: float = 0.0) -> list[Point]:
    """maj@k and pass@k at budgets 0, 64, 256 and k = 1..8, x the tokens a (budget, k) costs per problem."""
    tokens = {0: 10.0, 64: 40.0, 256: 160.0}
    points = [Point(series, metric, float(k), min(1.0, lift + 0.2 + math.log2(tokens[b]) / 40 + bonus * math.log2(k)),
                    budget=b, k=k, n_problems=32, samples=8)
              for metric, bonus in (("maj@k", 0.05), ("pass@k", 0.1)) for b in tokens for k in (1, 2, 4, 8)]
    return compute.compute_points(points, tokens)


def risk_points(series: str) -> list[Point]:
    return [Point(series, "risk", c, 0.5 * c, budget=256, n_problems=64, samples=4) for c in (0.25, 0.5, 0.75, 1.0)]


def legend_texts(figure) -> list[str]:
    legends = list(figure.legends) + [ax.get_legend() for ax in figure.axes if ax.get_legend()]
    return [text.get_text() for legend in legends for text in legend.get_texts()]


# ---------------------------------------------------------------- CSV

def test_points_csv_round_trips_floats_exactly(tmp_path):
    points = [
        Point("a, with comma", "accuracy", 0.1 + 0.2, 1 / 3, 1e-300, 2.0 ** 0.5, 64, None, 10, 4, "binary"),
        Point("b", "pass@k", 4, -0.0, None, None, None, 4),          # x given as int, y as -0.0
        Point("c", "gold_logprob", np.float64(17.25), np.float32(-3.1)),  # numpy floats write as plain numbers
    ]
    path = write_points_csv(points, tmp_path / "p.csv")
    back = read_points_csv(path)
    assert back == points
    assert [type(p.x) for p in back] == [float, float, float]
    assert back[2].y == float(np.float32(-3.1))  # exact, not rounded to a printed precision


def test_none_is_written_as_an_empty_cell(tmp_path):
    path = write_points_csv([Point("a", "accuracy", 1.0, 0.5)], tmp_path / "p.csv")
    header, row = path.read_text().splitlines()
    cells = dict(zip(header.split(","), row.split(",")))
    assert cells["lo"] == cells["hi"] == cells["budget"] == cells["k"] == ""


def test_read_points_csv_names_a_missing_column(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("series,metric,x\na,accuracy,1.0\n")
    with pytest.raises(ValueError, match=r"lacks column\(s\) y, lo"):
        read_points_csv(path)


def test_read_points_csv_names_a_bad_cell(tmp_path):
    path = write_points_csv([Point("a", "accuracy", 1.0, 0.5)], tmp_path / "p.csv")
    path.write_text(path.read_text().replace("0.5", "half"))
    with pytest.raises(ValueError, match=r"line 2: column 'y' holds 'half'"):
        read_points_csv(path)


# ---------------------------------------------------------------- every figure

PLOTS = {
    "accuracy": (plot_accuracy, lambda: sweep_points("base") + sweep_points("grpo", lift=0.1)),
    # one budget, so every point is drawn (which budget is kept is tested below)
    "at_k": (plot_at_k, lambda: [p for p in at_k_points("base") + at_k_points("grpo") if p.budget == 256]),
    "risk": (plot_risk_coverage, lambda: risk_points("base") + risk_points("grpo")),
    "compute": (plot_compute, lambda: compute_points("base") + compute_points("grpo", lift=0.1)),
    # greedy accuracy and mean@4 of the same checkpoints, a panel each (make demo)
    "panels": (plot_panels, lambda: [replace(p, metric=metric) for metric in ("accuracy", "mean@4") for p in
                                     sweep_points("base", gold=False) + sweep_points("grpo", 0.1, gold=False)]),
    "curve": (lambda pts, stem: plot_curve(pts, stem, "training step", "accuracy"),
              lambda: [Point(s, "accuracy", step, 0.1 + step / 1000)
                       for s in ("base", "grpo") for step in (0, 100, 200)]),
}


@pytest.mark.parametrize("name", PLOTS)
def test_each_plot_writes_a_non_blank_png_an_svg_and_its_points(tmp_path, name):
    plot, make_points = PLOTS[name]
    points = make_points()
    paths = plot(points, tmp_path / "sub" / name)
    assert [p.name for p in paths] == [f"{name}.png", f"{name}.svg", f"{name}.csv"]
    image = imread(paths[0])
    assert image.shape[0] >= 400 and image.shape[1] >= 600
    assert image[..., :3].std() > 0.05  # a blank (all-white) canvas has std 0
    assert paths[1].read_text().lstrip().startswith("<?xml") and "<svg" in paths[1].read_text()
    assert set(read_points_csv(paths[2])) == set(points)
    assert {p.series for p in read_points_csv(paths[2])} == {"base", "grpo"}  # the overlay kept both


def test_accuracy_csv_holds_exactly_the_accuracy_and_gold_points(tmp_path):
    wanted = sweep_points("base") + sweep_points("grpo", lift=0.1)
    unrelated = at_k_points("base") + risk_points("base")
    _, _, table = plot_accuracy(wanted + unrelated, tmp_path / "acc")
    back = read_points_csv(table)
    assert sorted(back, key=repr) == sorted(wanted, key=repr)
    assert {p.metric for p in back} == {"accuracy", "gold_logprob"}


@pytest.mark.parametrize("plot, metric", [(plot_accuracy, "'accuracy'"), (plot_at_k, "'pass@k' or 'maj@k' or 'best@k'"),
                                          (plot_risk_coverage, "'risk'")])
def test_a_missing_metric_is_a_value_error_naming_the_metrics_present(tmp_path, plot, metric):
    points = [Point("a", "score", 1.0, 0.5), Point("a", "gold_logprob", 1.0, -2.0)]
    present = r"got metrics \['gold_logprob', 'score'\]"
    with pytest.raises(ValueError, match=rf"needs points with metric {metric}, {present}"):
        plot(points, tmp_path / "x")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_plot_curve_refuses_no_points(tmp_path):
    with pytest.raises(ValueError, match="no points"):
        plot_curve([], tmp_path / "x", "step", "accuracy")


# ---------------------------------------------------------------- the accuracy figure

def test_gold_logprob_panel_appears_only_when_its_points_exist(tmp_path):
    with_gold = accuracy_chart(sweep_points("base"))
    without = accuracy_chart(sweep_points("base", gold=False))
    assert len(with_gold.figure.axes) == 2 and len(without.figure.axes) == 1
    assert "log p(gold answer)" in with_gold.figure.axes[1].get_ylabel()
    _, svg, _ = plot_accuracy(sweep_points("base", gold=False), tmp_path / "nogold")
    assert "log p(gold answer)" not in svg.read_text() and "accuracy" in svg.read_text()


def test_budget_zero_is_drawn_at_zero_tokens_inside_the_view():
    ax = accuracy_chart(sweep_points("base")).figure.axes[0]
    assert ax.get_xscale() == "symlog"
    assert 0.0 in ax.get_lines()[0].get_xdata()
    left, right = ax.get_xlim()
    assert left < 0.0 < 0.6 * 256 < right
    # the linear stretch [0, 1] is as wide as one doubling, so 0, 1, 2, 4 are evenly spaced
    zero, one, two, four = ax.transData.transform([(x, 0) for x in (0, 1, 2, 4)])[:, 0]
    assert one - zero == pytest.approx(two - one) == pytest.approx(four - two)


def test_each_point_is_annotated_with_its_budget():
    ax = accuracy_chart(sweep_points("base")).figure.axes[0]
    assert [t.get_text() for t in ax.texts if t.get_visible()] == [f"B={b}" for b in BUDGETS]


def test_axis_labels_say_what_was_measured_and_on_how_many_problems():
    ax = accuracy_chart(sweep_points("base")).figure.axes[0]
    assert ax.get_ylabel() == "accuracy\n(64 problems × 4 samples, 95% CI)"
    assert ax.get_xlabel().startswith("thinking tokens spent (mean per trace; log2")


def test_nan_points_are_skipped_counted_and_left_out_of_the_csv(tmp_path):
    points = sweep_points("base", gold=False)
    broken = Point("base", "accuracy", 500.0, float("nan"), budget=512, n_problems=64, samples=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # skipping is silent in the log and stated on the figure
        chart = accuracy_chart(points + [broken])
        _, _, table = plot_accuracy(points + [broken], tmp_path / "nan")
    assert chart.nan_skipped == 1
    assert "1 non-finite point not drawn" in chart.figure.axes[0].get_xlabel()
    assert read_points_csv(table) == points


def test_fits_are_dashed_in_their_series_colour_and_unknown_series_refused():
    fits = {"grpo": ([0, 4, 64], [0.2, 0.3, 0.5], "power law")}
    chart = accuracy_chart(sweep_points("base") + sweep_points("grpo"), fits=fits)
    lines = {line.get_label(): line for line in chart.figure.axes[0].get_lines()}
    assert lines["grpo: power law"].get_linestyle() == "--"
    assert lines["grpo: power law"].get_color() == lines["grpo"].get_color() != lines["base"].get_color()
    with pytest.raises(ValueError, match="fits names series 'nobody'"):
        accuracy_chart(sweep_points("base"), fits={"nobody": ([0], [0], "x")})


def test_lr_changes_draw_dotted_vertical_lines_on_every_panel():
    chart = accuracy_chart(sweep_points("base"), lr_changes=[16.0, 64.0])
    for ax in chart.figure.axes:
        dotted = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
        assert [line.get_xdata()[0] for line in dotted] == [16.0, 64.0]


# ---------------------------------------------------------------- at k, risk

def test_at_k_draws_each_series_largest_budget_unless_budgets_are_named():
    default = at_k_chart(at_k_points("base"))
    assert {p.budget for p in default.points} == {256}
    assert sorted(legend_texts(default.figure)) == ["base B=256 maj@k", "base B=256 pass@k"]
    both = at_k_chart(at_k_points("base"), budgets=[64, 256])
    assert {p.budget for p in both.points} == {64, 256} and len(legend_texts(both.figure)) == 4
    with pytest.raises(ValueError, match=r"budgets \[32\]; the points have budgets \[64, 256\]"):
        at_k_chart(at_k_points("base"), budgets=[32])


def test_at_k_styles_metrics_apart_and_colours_series_apart():
    lines = at_k_chart(at_k_points("base") + at_k_points("grpo")).figure.axes[0].get_lines()
    by_label = {line.get_label(): line for line in lines}
    assert by_label["base B=256 pass@k"].get_linestyle() != by_label["base B=256 maj@k"].get_linestyle()
    assert by_label["base B=256 pass@k"].get_color() != by_label["grpo B=256 pass@k"].get_color()


def test_many_lines_put_the_legend_outside_the_axes():
    chart = at_k_chart(at_k_points("base") + at_k_points("grpo"), budgets=[64, 256])
    assert len(chart.figure.legends) == 1 and chart.figure.axes[0].get_legend() is None


def test_risk_coverage_puts_a_lines_aurc_in_its_label_and_csv():
    aurc = Point("base", "aurc", 0.0, 0.1875, budget=256)
    chart = risk_coverage_chart(risk_points("base") + [aurc])
    assert legend_texts(chart.figure) == ["base B=256 (AURC 0.188)"]
    assert aurc in chart.points


def test_budgets_whose_points_coincide_share_one_label():
    # a trained model that stops thinking at ~27 tokens: budgets 32 and 64 land on one point
    points = [Point(series="m", metric="accuracy", x=27.0, y=0.47, lo=0.3, hi=0.6, budget=b) for b in (32, 64)]
    points.append(Point(series="m", metric="accuracy", x=0.0, y=0.0, lo=0.0, hi=0.05, budget=0))
    chart = accuracy_chart(points)
    assert sorted(text.get_text() for text in chart.figure.axes[0].texts) == ["B=0", "B=32,64"]


def test_panels_draw_one_metric_each_on_one_y_scale_with_a_series_in_one_colour():
    points = [replace(p, metric=metric, y=p.y + lift) for metric, lift in (("accuracy", 0.0), ("mean@4", 0.3))
              for p in sweep_points("before", gold=False) + sweep_points("after", 0.1, gold=False)]
    chart = panels_chart(points, titles={"mean@4": "4 samples at T=1"})
    left, right = chart.figure.axes
    assert [left.get_title(loc="left"), right.get_title(loc="left")] == ["accuracy", "4 samples at T=1"]
    assert right.get_ylabel().startswith("mean@4\n(64 problems × 4 samples")
    assert left.get_ylim() == right.get_ylim()  # shared: the mean@4 panel's higher curves raise both
    assert max(p.hi for p in points) <= left.get_ylim()[1]
    colours = [{line.get_label(): line.get_color() for line in ax.get_lines()} for ax in (left, right)]
    assert colours[0] == colours[1] and len(set(colours[0].values())) == 2
    assert legend_texts(chart.figure) == ["before", "after"]  # one legend for both panels


def test_panels_refuse_no_points():
    with pytest.raises(ValueError, match="no points"):
        panels_chart([])


# ---------------------------------------------------------------- think longer or sample more

def test_compute_draws_a_panel_per_series_and_metric_on_a_log_token_axis():
    chart = compute_chart(compute_points("base") + compute_points("grpo", lift=0.1))
    titles = [ax.get_title(loc="left") for ax in chart.figure.axes]
    assert [t.split(":")[0] for t in titles] == ["base · maj@k", "base · pass@k", "grpo · maj@k", "grpo · pass@k"]
    ax = chart.figure.axes[0]
    assert ax.get_xscale() == "symlog" and ax.get_xlabel() == ""  # the x label once, under the last row
    assert chart.figure.axes[2].get_xlabel().startswith("tokens generated per problem (k × mean per sample")
    assert ax.get_ylabel().startswith("maj@k accuracy\n(32 problems × 8 samples")
    assert "think longer: k = 1 at each budget B" in legend_texts(chart.figure)


def test_compute_marks_the_frontier_and_a_strip_segment_per_winner():
    points = compute_points("base")
    maj = [p for p in points if p.metric == "maj@k"]
    found = compute.segments(compute.settings(maj, "maj@k"), lambda a, b: (-0.1, 0.2) if b.k == 2 else (0.01, 0.3))
    chart = compute_chart(points, {("base", "maj@k"): found})
    ax = chart.figure.axes[0]
    frontier = compute.frontier(compute.settings(maj, "maj@k"))
    (step,) = [line for line in ax.get_lines() if line.get_drawstyle() == "steps-post"]
    assert list(step.get_xdata()[:-1]) == [s.compute for s in frontier]
    assert list(step.get_ydata()[:-1]) == [s.accuracy for s in frontier]
    assert step.get_xdata()[-1] == max(p.x for p in maj)  # drawn on to the costliest setting
    strips = ax.patches
    assert len(strips) == len(found) > 1
    # hatched exactly where the paired interval holds 0
    assert [bool(strip.get_hatch()) for strip in strips] == [not g.clear for g in found]
    assert any(g.clear for g in found) and not all(g.clear for g in found)
    # the k = 1 line is labelled with its budgets, as on the accuracy figure
    assert sorted(t.get_text() for t in ax.texts) == ["B=0", "B=256", "B=64"]


def test_compute_needs_maj_or_pass_points():
    with pytest.raises(ValueError, match="plot_compute needs points with metric 'maj@k' or 'pass@k'"):
        compute_chart([Point("a", "accuracy", 1.0, 0.5)])


def write_run(path, model: str, samples: int = 2) -> None:
    """A sweep directory holding ``make_rows``' traces (budgets 0, 16, 64; six problems)."""
    path.mkdir(parents=True)
    rows = make_rows(model, lambda p, s, b: (p + s) % 3 < 1 + b // 32, samples=samples)
    for row in rows:
        row["answer_tokens"] = 4
    (path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_rlcot_plot_draws_think_longer_or_sample_more_and_says_who_wins(tmp_path):
    write_run(tmp_path / "run", "m", samples=4)
    result = CliRunner().invoke(app, ["plot", str(tmp_path / "run"), "--out", str(tmp_path / "figs")])
    assert result.exit_code == 0, result.output
    for ext in ("png", "svg", "csv"):
        assert (tmp_path / "figs" / f"compute.{ext}").stat().st_size > 0
    drawn = read_points_csv(tmp_path / "figs" / "compute.csv")
    # every (budget, k) of both metrics, at k x the mean tokens a sample generated (thinking b // 2 + 4 answering)
    assert {(p.metric, p.budget, p.k, p.x) for p in drawn} == {
        (m, b, k, k * (b / 2 + 4)) for m in ("maj@k", "pass@k") for b in (0, 16, 64) for k in (1, 2, 4)}
    summary = json.loads((tmp_path / "figs" / "summary.json").read_text())
    maj = summary["compute"]["m"]["maj@k"]
    assert f"m, maj@k per tokens generated: {maj['says']}" in " ".join(result.output.split())
    assert maj["frontier"][0] == {"budget": 0, "k": 1, "tokens": 4.0, "accuracy": pytest.approx(1 / 3)}
    assert maj["frontier"][-1] == {"budget": 64, "k": 1, "tokens": 36.0, "accuracy": 1.0}  # B=64 is always right
    # at 36 tokens one sample at B=64 beats any vote that costs no more; from 72 on, two votes at B=64 tie it
    by_start = {segment["from_tokens"]: segment for segment in maj["segments"]}
    assert by_start[36.0]["winner"] == "think longer" and by_start[36.0]["think"]["budget"] == 64
    assert by_start[72.0]["winner"] == "tie" and by_start[72.0]["sample"] == {"budget": 64, "k": 2, "tokens": 72.0,
                                                                                "accuracy": 1.0}
    assert summary["notes"] == []


def test_rlcot_plot_says_when_think_longer_or_sample_more_cannot_be_drawn(tmp_path):
    write_run(tmp_path / "greedy", "m", samples=1)
    result = CliRunner().invoke(app, ["plot", str(tmp_path / "greedy"), "--out", str(tmp_path / "figs")])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "figs" / "compute.png").exists()
    said = " ".join(result.output.split())
    assert "note: no think-longer-or-sample-more figure for m (3 budgets x 1 sample per row)" in said
    assert "--samples 8 --temperature 1" in said


# ---------------------------------------------------------------- curve labels of overlaid runs

@pytest.mark.parametrize("runs, labels", [
    # the two cases: the run's name repeated the model, or named the same weights another way
    ({"smollm2-135m": ["smollm2-135m"], "train@last": ["train@10"]}, [{"smollm2-135m": "smollm2-135m"},
                                                                     {"train@10": "train@10"}]),
    # one model in two runs: the run tells the curves apart
    ({"base": ["m"], "hot": ["m"]}, [{"m": "base: m"}, {"m": "hot: m"}]),
    # ... said once where the run's name already holds the model as a word
    ({"sweeps/smollm2-135m": ["smollm2-135m"], "sweeps/smollm2-135m-hot": ["smollm2-135m"]},
     [{"smollm2-135m": "smollm2-135m"}, {"smollm2-135m": "smollm2-135m-hot"}]),
    # a model's name inside another word is not that word
    ({"summary": ["m"], "other": ["m"]}, [{"m": "summary: m"}, {"m": "other: m"}]),
    # runs of one name in two folders: their paths
    ({"a/sweep": ["m", "n"], "b/sweep": ["m"]}, [{"m": "a/sweep: m", "n": "n"}, {"m": "b/sweep: m"}]),
    # two models of one run never merge into one curve named by the run
    ({"x/m-n": ["m", "n"], "y/z": ["m", "n"]}, [{"m": "m-n: m", "n": "m-n: n"}, {"m": "z: m", "n": "z: n"}]),
])
def test_overlaid_runs_name_each_curve_once(runs, labels):
    assert run_labels(list(runs.items())) == labels


def test_rlcot_plot_of_two_runs_labels_each_curve_once(tmp_path):
    write_run(tmp_path / "smollm2-135m", "smollm2-135m")
    write_run(tmp_path / "train@last", "train@10")
    result = CliRunner().invoke(app, ["plot", str(tmp_path / "smollm2-135m"), str(tmp_path / "train@last"),
                                      "--out", str(tmp_path / "figs")])
    assert result.exit_code == 0, result.output
    for figure in ("accuracy", "at_k", "compute"):
        assert {p.series for p in read_points_csv(tmp_path / "figs" / f"{figure}.csv")} == {"smollm2-135m", "train@10"}
    assert "smollm2-135m: smollm2-135m" not in result.output and "train@last: train@10" not in result.output
    legend = legend_texts(accuracy_chart(read_points_csv(tmp_path / "figs" / "accuracy.csv")).figure)
    assert legend == ["smollm2-135m", "train@10"]
