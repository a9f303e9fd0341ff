"""Sweeping "asked, not forced" (issue 18 part 4): the prompt states B, forcing waits until STATED_SLACK * B."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rlcot.cli import app
from rlcot.evals.series import s1_numbers, series_of
from rlcot.evals.sweep import STATED_SLACK, model_loader, run_sweep
from rlcot.evals.sweep_spec import SweepSpec
from rlcot.store import load_traces
from tests.evals.test_sweep import hash_lm, spec


def test_a_stated_sweep_stores_each_budget_asked_in_the_prompt_and_control_measures_obedience(tmp_path, tokenizer):
    report = run_sweep(spec(stated=(0, 3, 6)), tmp_path, loader=model_loader(hash_lm(tokenizer), tokenizer))
    traces = load_traces(tmp_path)
    assert report.written == len(traces) == 3 * 2 * (3 + 3)  # rows x samples x (cap budgets + stated budgets)
    stated = [t for t in traces if t.mode == "stated"]
    assert {(t.row_id, t.sample, t.budget) for t in stated} == {
        (f"arith-{i}", s, b) for i in range(3) for s in range(2) for b in (0, 3, 6)}
    for trace in stated:
        assert f"Think for at most {trace.budget} tokens." in trace.prompt
        # the hash model never closes its thinking: asked for B, it runs on until forcing stops it at the slack
        assert trace.thinking_tokens == STATED_SLACK * trace.budget and trace.capped
    assert any(t.thinking_tokens > t.budget for t in stated)
    for trace in traces:
        if trace.mode == "cap":
            assert "Think for at most" not in trace.prompt and trace.thinking_tokens <= trace.budget
    by_label = {series.label: series for series in series_of(traces)}
    assert set(by_label) == {"m", "m +stated"}
    assert by_label["m +stated"].budgets == [0, 3, 6]
    # Control: the share of traces within B. Forced at B it is 1; asked, only B = 0 (forced at 2 * 0) stays inside
    assert s1_numbers(by_label["m"])["control"] == 1.0
    assert s1_numbers(by_label["m +stated"])["control"] == pytest.approx(1 / 3)


def test_stated_budgets_resume_apart_from_cap_budgets_of_the_same_number(tmp_path, tokenizer):
    load = model_loader(hash_lm(tokenizer), tokenizer)
    run_sweep(spec(), tmp_path, loader=load)
    more = run_sweep(spec(stated=(4,)), tmp_path, loader=load)
    assert (more.written, more.skipped) == (3 * 2, 18)  # cap 4 is stored; stated 4 is another trace
    again = run_sweep(spec(stated=(4,)), tmp_path, loader=load)
    assert (again.written, again.skipped) == (0, 24)
    only = run_sweep(spec(budgets=(), stated=(4,)), tmp_path, loader=load)
    assert (only.written, only.skipped) == (0, 6)


def test_stated_reads_from_a_spec_and_bad_values_are_named():
    assert SweepSpec.from_mapping({"stated": "32,64,128"}).stated == (32, 64, 128)
    assert SweepSpec.from_mapping({"budgets": [], "stated": [16]}).stated == (16,)
    with pytest.raises(ValueError, match=r"budgets \[-4\] are not whole numbers"):
        SweepSpec.from_mapping({"stated": [-4]})
    with pytest.raises(ValueError, match="no budgets"):
        SweepSpec.from_mapping({"budgets": []})


def test_rlcot_sweep_takes_stated_budgets(tmp_path, tiny_dir):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["sweep", "--model", str(tiny_dir), "--out", str(out), "--limit", "1",
                                      "--budgets", "2", "--stated", "2,4", "--dtype", "fp32",
                                      "--max-answer-tokens", "2", "--no-gold-logprob"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert sorted((line["mode"], line["budget"]) for line in lines) == [("cap", 2), ("stated", 2), ("stated", 4)]
    assert all(line["thinking_tokens"] <= STATED_SLACK * line["budget"] for line in lines)
