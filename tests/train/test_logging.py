"""Logs where people read them: ``grpo.report_to`` tensorboard and trackio get the run's outcome rates.

One one-step run through ``rlcot train`` in a subprocess (trackio reads its store's
location, ``TRACKIO_DIR``, once on import, so a test points it at ``tmp_path`` through the
environment) on a machine made offline (``OFFLINE``: every socket connection refused and
recorded), then each store read back with its own reader: tensorboard's
``EventAccumulator`` and trackio's SQLite file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import replace

import pytest
import yaml

from rlcot.train.resolve import resolve_run
from tests.train.test_processes import ENV, write_recipe
from tests.train.test_trainer import recipe_for

# a sitecustomize for the subprocess: no connection leaves it, and each one tried is written down
OFFLINE = """
import os, socket

def refuse(self, address):
    with open(os.environ["TRIED_CONNECTIONS"], "a") as tried:
        tried.write(f"{address}\\n")
    raise OSError("offline")

socket.socket.connect = refuse
"""
# what the reward functions log through log_metric (rlcot.train.rewards.outcome_metrics)
OURS = ("outcomes/correct", "outcomes/wrong", "outcomes/unparsed", "score/mean", "thinking/mean_tokens",
        "thinking/cap_rate")


@pytest.fixture(scope="module")
def reported(tmp_path_factory, tiny_dir):
    """A three-step run reporting to tensorboard and trackio, offline: run directory, trackio's store, its output,
    and the file of the connections it tried. Its eval curves are drawn before the trainer's trackio run opens
    (step 0), inside it (step 2: every 2 steps) and after it has finished (step 3)."""
    root = tmp_path_factory.mktemp("reported")
    out, store = root / "run", root / "trackio"
    recipe = write_recipe(root / "recipe.yaml", tiny_dir, out, max_steps=3, report_to=["tensorboard", "trackio"])
    fields = yaml.safe_load(recipe.read_text())  # eval curves on 3 held-out rows
    fields["tasks"][0]["eval_size"], fields["eval"] = 3, {"budgets": [0, 4], "sampled": 0, "every": 2}
    recipe.write_text(yaml.safe_dump(fields))
    (root / "site").mkdir()
    (root / "site" / "sitecustomize.py").write_text(OFFLINE)
    env = {**ENV, "TRACKIO_DIR": str(store), "OMP_NUM_THREADS": "1", "TRIED_CONNECTIONS": str(root / "tried"),
           "PYTHONPATH": os.pathsep.join([str(root / "site"), ENV["PYTHONPATH"]])}
    env.pop("HF_HUB_OFFLINE", None)  # trackio itself must stay local, not be told to
    done = subprocess.run([sys.executable, "-m", "rlcot", "train", str(recipe), "--device", "cpu"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, store, done.stdout + done.stderr, root / "tried"


def logged_steps(out) -> dict[int, dict]:
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = {line["step"]: line for line in lines if "reward" in line}
    assert sorted(steps) == [1, 2, 3] and all(key in line for line in steps.values() for key in OURS)
    return steps


def test_tensorboard_holds_the_outcome_rates_and_thinking_tokens_of_metrics_jsonl_in_the_run_directory(reported):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _, text, _ = reported
    steps = logged_steps(out)
    events = EventAccumulator(str(out / "tensorboard"))  # RUN/tensorboard, not transformers' RUN/runs/<date>_<host>
    events.Reload()
    for key in OURS:
        drawn = {s.step: s.value for s in events.Scalars(f"train/{key}")}  # transformers' callback prefixes train/
        assert drawn == pytest.approx({step: line[key] for step, line in steps.items()}, rel=1e-6)  # float32
    assert f"event files in {out / 'tensorboard'}" in text  # the run's notes say where


def expected_eval_scalars(out) -> dict[tuple[str, int], float]:
    """What the stored eval traces say: (tag, step) -> mean over the 3 held-out rows, per budget."""
    from rlcot.store import load_traces

    traces = load_traces(out / "eval" / "arith")
    expected = {}
    for budget in (0, 4):
        for step in (0, 2, 3):  # before the trainer's run, inside it, after it
            at = [t for t in traces if t.step == step and t.budget == budget]
            assert len(at) == 3
            expected[f"eval/arith/accuracy@{budget}", step] = sum(t.verdict.outcome == "correct" for t in at) / 3
            expected[f"eval/arith/score@{budget}", step] = sum(t.score for t in at) / 3
            expected[f"eval/arith/thinking_tokens@{budget}", step] = sum(t.thinking_tokens for t in at) / 3
    return expected


def test_tensorboard_holds_each_eval_curves_accuracy_per_budget_at_the_step_it_was_drawn(reported):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _, _, _ = reported
    expected = expected_eval_scalars(out)
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    drawn = {(tag, scalar.step): scalar.value for tag in {tag for tag, _ in expected}
             for scalar in events.Scalars(tag)}
    assert drawn == pytest.approx(expected, rel=1e-6)  # float32 in the event file


def test_trackio_holds_each_eval_curve_at_its_step_the_first_and_last_drawn_outside_the_trainers_run(reported):
    out, store, text, tried = reported
    assert not tried.exists()
    expected = expected_eval_scalars(out)
    with sqlite3.connect(store / "rlcot.db") as db:
        rows = db.execute("select run_name, step, metrics from metrics").fetchall()
    logged = {(tag, step): value for name, step, metrics in rows if name == str(out.resolve())
              for tag, value in json.loads(metrics).items() if tag.startswith("eval/")}
    assert logged == pytest.approx(expected)
    # trackio says "* Created new run" or "* Resumed existing run" each time a run opens: the lines of the two
    # opened here went to the log; the trainer's own (it resumes the run the first curve created) still shows
    opened = [line for line in text.splitlines() if line.startswith(("* Created new run", "* Resumed existing run"))]
    assert opened == [f"* Resumed existing run: {out.resolve()}"]
    assert f"* Created new run: {out.resolve()}" in (out / "train.log").read_text()


def test_a_step_0_curve_before_a_warm_up_has_its_own_tensorboard_tags():
    from rlcot.evals.training import scalar_prefix
    from rlcot.train.resolve import WARM_UP_LABEL

    assert scalar_prefix("chain", "step 0", 0, warm_up=True) == "eval/chain/before-warm-up"
    assert scalar_prefix("chain", WARM_UP_LABEL, 0, warm_up=True) == "eval/chain"  # what GRPO starts from
    assert scalar_prefix("chain", "step 0", 0, warm_up=False) == "eval/chain"
    assert scalar_prefix("chain", "step 5", 5, warm_up=True) == "eval/chain"


def test_trackio_logs_locally_offline_under_project_rlcot_named_by_the_run_directory(reported):
    out, store, _, tried = reported
    assert not tried.exists()  # not one connection tried: no Space, no hub, no version check
    steps = logged_steps(out)
    with sqlite3.connect(store / "rlcot.db") as db:  # trackio's local store: one SQLite file per project
        rows = db.execute("select run_name, metrics from metrics").fetchall()
    logged = [(name, json.loads(metrics)) for name, metrics in rows]
    found = [(name, metrics) for name, metrics in logged if "train/outcomes/correct" in metrics]
    assert {name for name, _ in found} == {str(out.resolve())}
    by_step = {metrics["train/global_step"]: metrics for _, metrics in found}
    assert sorted(by_step) == [1, 2, 3]
    for step, line in steps.items():
        assert {key: by_step[step][f"train/{key}"] for key in OURS} == pytest.approx({key: line[key] for key in OURS})


def test_report_to_a_tracker_that_is_not_installed_is_a_one_line_error_naming_the_extra(tmp_path, tiny_dir,
                                                                                         monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trackio" else real(name, *a))
    recipe = recipe_for(tiny_dir, tmp_path)
    with pytest.raises(ValueError, match=r"grpo.report_to=trackio needs the trackio package.*rlcot\[logging\]"):
        resolve_run(replace(recipe, grpo={**recipe.grpo, "report_to": ["trackio"]}), device="cpu")
