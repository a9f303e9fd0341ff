"""From sweep rows to points, tables and figures: numbers checked by hand, series read back from the CSVs."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rlcot.evals.analysis import headline, plot_runs
from rlcot.evals.series import at_k_points, curve_points, series_of
from rlcot.evals.points import read_points_csv
from rlcot.evals.sweep import model_loader, run_sweep
from rlcot.cli import app
from rlcot.records import ScoredTrace
from tests.evals.test_sweep import hash_lm, spec


def make_rows(model, correct, budgets=(0, 16, 64), samples=2, problems=6, step=None, run_dir=None, parameters=None):
    """Rows as a sweep stores them; ``correct(problem, sample, budget)`` decides each verdict."""
    rows = []
    for p in range(problems):
        for s in range(samples):
            for b in budgets:
                ok = correct(p, s, b)
                rows.append({
                    "key": f"{model}-{p}-{s}-{b}", "model": model, "task": {"name": "arith"}, "row_id": f"q{p}",
                    "row": {"id": f"q{p}"}, "completion": "", "sample": s, "budget": b,
                    "mode": "cap", "step": step, "run_dir": run_dir, "parameters": parameters,
                    "thinking_tokens": b // 2, "capped": False, "gold_logprob": -1.0 - p / (1 + b),
                    "verdict": {"outcome": "correct" if ok else "wrong", "hedged": False,
                                "answer": "42" if ok else f"{p}{s}"},
                    "score": 1.0 if ok else -4.0, "scheme": "default"})
    return rows


def traces(rows: list[dict]) -> list[ScoredTrace]:
    """The rows as the store hands them to every reader."""
    return [ScoredTrace.from_dict(row) for row in rows]


def test_accuracy_points_are_problem_means_with_a_seeded_paired_interval():
    rows = make_rows("m", lambda p, s, b: p < b // 16 + 1 and s == 0)
    series = series_of(traces(rows))[0]
    points = {p.budget: p for p in curve_points(series, "default") if p.metric == "accuracy"}
    # budget 64: problems 0..4 have sample 0 correct -> 5 of 12 samples
    assert points[64].y == pytest.approx(5 / 12) and points[0].y == pytest.approx(1 / 12)
    assert points[16].x == 8.0  # the x-axis is the thinking actually spent, not the budget
    assert all(p.lo <= p.y <= p.hi for p in points.values())
    again = {p.budget: p for p in curve_points(series, "default") if p.metric == "accuracy"}
    assert [(p.lo, p.hi) for p in points.values()] == [(p.lo, p.hi) for p in again.values()]
    assert points[64].lo < points[64].y < points[64].hi  # six problems: a real spread, not a point


def test_pass_and_majority_at_k_follow_the_samples():
    # problem p: sample 0 right, sample 1 wrong (distinct answers): pass@2 = 1, maj@2 = a coin flip = 0.5
    rows = make_rows("m", lambda p, s, b: s == 0, budgets=(16,))
    points = {(p.metric, p.k): p.y for p in at_k_points(series_of(traces(rows))[0], "default")}
    assert points["pass@k", 1] == pytest.approx(0.5) and points["pass@k", 2] == pytest.approx(1.0)
    assert points["maj@k", 2] == pytest.approx(0.5)
    assert points["best@k", 1] == pytest.approx(0.5)  # one sample: best-of-1 is accuracy


def test_best_of_k_picks_by_the_models_confidence():
    # the correct sample is the more confident one in every problem: best@2 = 1; reversed: 0
    rows = make_rows("m", lambda p, s, b: s == 0, budgets=(16,))
    for row in rows:
        row["sum_logprob"], row["sampled_tokens"] = (-1.0 if row["sample"] == 0 else -9.0), 10
    best = {p.k: p.y for p in at_k_points(series_of(traces(rows))[0], "default") if p.metric == "best@k"}
    assert best[2] == pytest.approx(1.0)
    for row in rows:
        row["sum_logprob"] = -9.0 if row["sample"] == 0 else -1.0
    best = {p.k: p.y for p in at_k_points(series_of(traces(rows))[0], "default") if p.metric == "best@k"}
    assert best[2] == pytest.approx(0.0)
    table = headline(traces(rows))
    assert table[0]["pass@2"] == "1.000" and table[0]["maj@2"] == "0.500" and table[0]["acc"] == "0.500"


def test_checkpoints_give_a_training_curve_with_the_lr_schedule_marked(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    history = [{"step": s, "learning_rate": 1e-4 if s <= 50 else 1e-5} for s in range(10, 110, 10)]
    (run / "trainer_state.json").write_text(json.dumps({"global_step": 100, "log_history": history}))
    rows = []
    for step in (20, 40, 60, 80):  # accuracy jumps between 40 and 60, where the LR drops
        rows += make_rows(f"run@{step}", lambda p, s, b, step=step: step >= 60 or p == 0, step=step, run_dir=str(run))
    summary = plot_runs(traces(rows), tmp_path / "plots")
    training = read_points_csv(tmp_path / "plots" / "training.csv")
    assert {p.series for p in training} == {"B=0", "B=16", "B=64"}
    assert sorted({p.x for p in training}) == [20.0, 40.0, 60.0, 80.0]
    assert [c["kind"] for c in summary["training"]["lr_changes"]] == ["drop"]
    jumps = summary["training"]["jumps"]
    assert jumps and all(j["from_step"] == 40 and j["to_step"] == 60 and j["at_lr_change"] for j in jumps)


def test_models_of_several_sizes_give_a_model_size_curve(tmp_path):
    rows = make_rows("small", lambda p, s, b: p == 0, parameters=135_000_000)
    rows += make_rows("large", lambda p, s, b: p < 4, parameters=1_700_000_000)
    plot_runs(traces(rows), tmp_path)
    sizes = read_points_csv(tmp_path / "model_size.csv")
    assert sorted({p.x for p in sizes}) == [135.0, 1700.0]
    assert {p.series for p in sizes} == {"B=0", "B=16", "B=64"}


def test_a_model_and_its_adapter_are_not_a_model_size_curve(tmp_path):
    rows = make_rows("base", lambda p, s, b: p == 0, parameters=135_000_000)
    rows += make_rows("base + LoRA", lambda p, s, b: p < 4, parameters=139_400_000)  # r=16 adds ~3%
    plot_runs(traces(rows), tmp_path)
    assert not (tmp_path / "model_size.csv").exists()


def test_rlcot_plot_overlays_runs_and_writes_every_figure(tmp_path, tokenizer):
    load = model_loader(hash_lm(tokenizer), tokenizer)
    for name in ("before", "after"):
        run_sweep(spec(), tmp_path / name, loader=load)
    result = CliRunner().invoke(app, ["plot", str(tmp_path / "before"), str(tmp_path / "after"), "--fit",
                                      "--out", str(tmp_path / "figs")])
    assert result.exit_code == 0, result.output
    accuracy = read_points_csv(tmp_path / "figs" / "accuracy.csv")
    assert {p.series for p in accuracy} == {"before: m", "after: m"}
    assert {(p.metric, p.budget) for p in accuracy} == {("accuracy", b) for b in (0, 4, 8)}
    assert all(p.n_problems == 3 and p.samples == 2 for p in accuracy)
    for stem in ("accuracy", "at_k", "risk_coverage"):
        for ext in ("png", "svg", "csv"):
            assert (tmp_path / "figs" / f"{stem}.{ext}").stat().st_size > 0
    summary = json.loads((tmp_path / "figs" / "summary.json").read_text())
    assert set(summary["series"]) == {"before: m", "after: m"}
    assert "sigmoid" in summary["series"]["before: m"]  # asked with --fit (it may honestly fail to converge)


def test_rlcot_plot_of_an_unknown_scoring_names_what_there_is(tmp_path, tokenizer):
    run_sweep(spec(), tmp_path, loader=model_loader(hash_lm(tokenizer), tokenizer))
    result = CliRunner().invoke(app, ["plot", str(tmp_path), "--scheme", "strict"])
    assert result.exit_code == 2
    assert "no scoring 'strict' (it has: default)" in result.output


def test_before_after_pairs_the_first_curve_with_the_last_per_budget():
    from rlcot.evals.analysis import before_after

    before = make_rows("step 0", lambda p, s, b: p == 0, budgets=(0, 64), samples=1)
    middle = make_rows("step 5", lambda p, s, b: False, budgets=(0, 64), samples=1)
    after = make_rows("step 10", lambda p, s, b: b == 64 and p < 4, budgets=(0, 64), samples=1)
    lines = {line["budget"]: line for line in before_after(traces(before + middle + after))}
    assert (lines[64]["before"], lines[64]["after"]) == ("step 0", "step 10")  # the middle curve is skipped
    assert lines[64]["accuracy_before"] == pytest.approx(1 / 6) and lines[64]["accuracy_after"] == pytest.approx(4 / 6)
    assert lines[64]["change"] == pytest.approx(3 / 6) and lines[64]["change_lo"] > 0  # 3 up, none down
    assert lines[0]["change"] == pytest.approx(-1 / 6) and lines[0]["change_lo"] < 0 < lines[0]["change_hi"] + 1e-9
    assert "abstain_unanswerable_after" not in lines[64]  # every row answerable: no abstain columns
    assert before_after(traces(before)) == []  # one curve: nothing to compare
    for row in after:  # other questions: no problem in common, nothing paired (once a ValueError)
        row["row_id"] = "other-" + row["row_id"]
    assert before_after(traces(before + after)) == []


def test_rl_gain_is_measured_from_the_warm_up_curve_with_mean_at_k_and_the_score_paired():
    from rlcot.evals.analysis import before_after

    # 4 samples a problem: mean@4 is the share of a problem's samples that are right
    start = make_rows("step 0", lambda p, s, b: False, budgets=(64,), samples=4)
    warm = make_rows("after SFT warm-up", lambda p, s, b: s == 0, budgets=(64,), samples=4)  # 1 of 4 right
    final = make_rows("step 20", lambda p, s, b: s < 3, budgets=(64,), samples=4)  # 3 of 4 right
    (overall,) = before_after(traces(start + warm + final))
    (rl,) = before_after(traces(start + warm + final), reference="after SFT warm-up")
    assert (overall["before"], rl["before"]) == ("step 0", "after SFT warm-up") and rl["after"] == "step 20"
    assert rl["samples"] == 4 and rl["accuracy_before"] == pytest.approx(0.25) and rl["change"] == pytest.approx(0.5)
    assert overall["change"] == pytest.approx(0.75)
    # make_rows scores right +1, wrong -4: the mean score moves 5 x the accuracy, paired per problem (no spread)
    assert rl["score_change"] == pytest.approx(2.5) and rl["score_change_lo"] == pytest.approx(2.5)
    assert before_after(traces(start + final), reference="after SFT warm-up")[0]["before"] == "step 0"  # none: first


def test_before_after_reports_abstaining_on_answerable_and_unanswerable_rows_apart():
    from rlcot.evals.analysis import before_after

    rows = []
    for model, abstains in (("step 0", lambda p: False), ("step 9", lambda p: p >= 3)):
        made = make_rows(model, lambda p, s, b: False, budgets=(64,), samples=1)
        for row in made:
            p = int(row["row_id"][1:])
            row["row"] = {"id": row["row_id"], "answerable": p < 4}  # q4, q5 cannot be answered
            if abstains(p):
                row["verdict"] = {**row["verdict"], "outcome": "abstain"}
        rows += made
    (line,) = before_after(traces(rows))
    assert line["abstain_unanswerable_before"] == 0 and line["abstain_unanswerable_after"] == 1
    assert line["abstain_answerable_before"] == 0 and line["abstain_answerable_after"] == pytest.approx(1 / 4)
