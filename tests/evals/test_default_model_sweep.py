"""A small sweep of the real default model over arith: the numbers a user would see."""

from __future__ import annotations

import math

import pytest

from rlcot.evals.analysis import headline
from rlcot.store import load_traces
from rlcot.evals.sweep import model_loader, run_sweep
from rlcot.evals.sweep_spec import SweepSpec

pytestmark = pytest.mark.default_model


def test_default_model_sweep_over_arith_forks_scores_and_measures_the_gold(tmp_path, default_policy):
    model, tokenizer = default_policy
    spec = SweepSpec(budgets=(0, 16, 32), limit=3, dtype="fp32", max_answer_tokens=12)
    report = run_sweep(spec, tmp_path, loader=model_loader(model, tokenizer))
    rows = load_traces(tmp_path)
    assert report.written == len(rows) == 9
    by = {(r.row_id, r.budget): r for r in rows}
    for problem in {r.row_id for r in rows}:
        top = by[problem, 32]
        for budget in (0, 16):
            row = by[problem, budget]
            assert row.thinking_tokens <= budget
            if row.capped:  # a fork: the same thinking as the larger budget's, cut at the cap
                assert row.thinking_tokens == budget
                thinking = row.completion[: row.forced_spans[0][0]]
                assert top.completion.startswith(thinking)
        # the gold is far likelier than a random token string, and is a probability
        assert all(-60 < by[problem, b].gold_logprob < 0 for b in (0, 16, 32))
    table = headline(rows)
    assert [line["B"] for line in table] == [0, 16, 32]
    assert all(0 <= float(line["acc"]) <= 1 and math.isfinite(float(line["logp gold"])) for line in table)
