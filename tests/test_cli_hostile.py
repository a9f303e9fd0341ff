"""The CLI against a hostile user and a hostile machine: outputs onto inputs, files where directories belong,
read-only disks, a full disk mid-run, prompts longer than the model. One line each, nothing lost (issue 16)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlcot.cli import app

runner = CliRunner()

COMPLETION = {"row": {"id": "a", "question": "What is 2 + 2?", "answer": "4"},
              "completion": "<think>\n2 + 2 = 4\n</think>\n\\boxed{4}"}


def one_line_error(result) -> str:
    """The error a command printed, asserting it is one line and no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_score_refuses_to_write_onto_its_input_and_leaves_it_whole(tmp_path):
    rows = tmp_path / "x.jsonl"
    rows.write_text(json.dumps(COMPLETION) + "\n")
    before = rows.read_bytes()
    line = one_line_error(runner.invoke(app, ["score", str(rows), "--verifier", "math", "--out", str(rows)]))
    assert "is also the input" in line and "x.jsonl" in line
    assert rows.read_bytes() == before
    # the same input through a second name (a symlink) is the same file
    alias = tmp_path / "alias.jsonl"
    alias.symlink_to(rows)
    one_line_error(runner.invoke(app, ["score", "--input", str(rows), "--verifier", "math", "--out", str(alias)]))
    assert rows.read_bytes() == before


def test_an_interrupted_score_leaves_the_previous_output_whole(tmp_path, monkeypatch):
    rows, out = tmp_path / "x.jsonl", tmp_path / "scored.jsonl"
    rows.write_text((json.dumps(COMPLETION) + "\n") * 3)
    assert runner.invoke(app, ["score", str(rows), "--verifier", "math", "--out", str(out)]).exit_code == 0
    before = out.read_bytes()
    from rlcot.records import Scorer

    calls = {"n": 0}
    real = Scorer.score_many

    def dies_on_the_second_row(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Scorer, "score_many", dies_on_the_second_row)
    result = runner.invoke(app, ["score", str(rows), "--verifier", "math", "--out", str(out)])
    assert result.exit_code != 0
    assert out.read_bytes() == before


@pytest.mark.parametrize("command, kind", [
    (["generate", "--task", "arith", "--n", "1"], "dir"),
    (["score", "--verifier", "math"], "dir"),
    (["sweep", "--limit", "1"], "file"),
    (["train", "recipes/arith-grpo-cpu.yaml"], "file"),
])
def test_an_out_of_the_wrong_kind_is_one_line_naming_it(tmp_path, command, kind):
    """`generate --out DIR`, `score --out DIR`, `sweep --out FILE`, `train --out FILE`: once tracebacks."""
    root = Path(__file__).resolve().parents[1]
    command = [str(root / part) if part.startswith("recipes/") else part for part in command]
    out = tmp_path / "out"
    if kind == "dir":
        out.mkdir()
    else:
        out.write_text("precious\n")
    extra = []
    if command[0] == "score":
        rows = tmp_path / "x.jsonl"
        rows.write_text(json.dumps(COMPLETION) + "\n")
        extra = ["--input", str(rows)]
    line = one_line_error(runner.invoke(app, [*command, *extra, "--out", str(out)]))
    assert str(out) in line and ("is a directory" in line or "is a file" in line)
    if kind == "file":
        assert out.read_text() == "precious\n"


def test_report_and_plot_refuse_outputs_that_would_overwrite_a_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "rows.jsonl").write_text("{}\n")
    line = one_line_error(runner.invoke(app, ["report", str(run), "--out", str(run / "rows.jsonl")]))
    assert "not an .html file" in line and (run / "rows.jsonl").read_text() == "{}\n"
    line = one_line_error(runner.invoke(app, ["plot", str(run), "--out", str(run / "rows.jsonl")]))
    assert "is a file" in line and (run / "rows.jsonl").read_text() == "{}\n"


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory on a read-only file system: a real read-only tmpfs where this process may mount one (root),
    else a directory whose write permission is taken away (for a user who is not root, the same refusal)."""
    path = tmp_path / "ro"
    path.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)],
                                                   capture_output=True).returncode == 0
    if not mounted:
        if os.geteuid() == 0:
            pytest.fail("running as root but cannot mount a read-only tmpfs to test against")
        path.chmod(0o555)
    yield path
    if mounted:
        subprocess.run(["umount", str(path)], check=True)
    else:
        path.chmod(0o755)


@pytest.mark.parametrize("command", [
    ["score", "--verifier", "math", "--out", "{ro}/scored.jsonl"],
    ["generate", "--n", "1", "--out", "{ro}/traces.jsonl"],
    ["sweep", "--limit", "1", "--out", "{ro}/sweep"],
    ["report", "{run}", "--out", "{ro}/report.html"],
    ["plot", "{run}", "--out", "{ro}/plots"],
])
def test_every_command_writing_onto_a_read_only_disk_says_so_in_one_line(tmp_path, read_only_dir, command):
    rows = tmp_path / "x.jsonl"
    rows.write_text(json.dumps(COMPLETION) + "\n")
    run = tmp_path / "run"
    run.mkdir()
    args = [part.format(ro=read_only_dir, run=run) for part in command]
    if args[0] == "score":
        args += ["--input", str(rows)]
    line = one_line_error(runner.invoke(app, args))
    assert str(read_only_dir) in line and ("read-only" in line or "permission" in line)


def test_a_full_disk_mid_sweep_is_one_line_and_the_next_run_resumes_to_the_same_rows(tmp_path, tiny_dir, monkeypatch):
    # fp32 pinned: the two directories are compared key for key, and `auto` is a timing that may tip between them
    args = ["sweep", "--model", str(tiny_dir), "--limit", "3", "--budgets", "0,4", "--max-answer-tokens", "4",
            "--batch-size", "1", "--no-gold-logprob", "--dtype", "fp32"]
    clean = tmp_path / "clean"
    assert runner.invoke(app, [*args, "--out", str(clean)]).exit_code == 0
    full = tmp_path / "full"
    real_fsync, calls = os.fsync, {"n": 0}

    def disk_fills_on_the_second_fsync(fd):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as the kernel says it: no file name
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", disk_fills_on_the_second_fsync)
    line = one_line_error(runner.invoke(app, [*args, "--out", str(full)]))
    assert "No space left" in line and "rows.jsonl" in line and "resumes" in line
    monkeypatch.setattr(os, "fsync", real_fsync)
    result = runner.invoke(app, [*args, "--out", str(full)])
    assert result.exit_code == 0, result.output
    keys = lambda d: sorted(json.loads(x)["key"] for x in (d / "rows.jsonl").read_text().splitlines())  # noqa: E731
    assert keys(full) == keys(clean) and len(keys(full)) == 6


def test_a_prompt_longer_than_the_models_context_is_named_before_generating(tmp_path, tokenizer):
    from rlcot.builtin_models import tiny_llama

    small = tmp_path / "small"
    tiny_llama(vocab_size=len(tokenizer), max_position_embeddings=256).save_pretrained(small)
    tokenizer.save_pretrained(small)
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"id": "fits", "question": "What is 2 + 2?", "answer": "4"}) + "\n"
                    + json.dumps({"id": "huge", "question": "two plus two " * 400, "answer": "4"}) + "\n")
    out = tmp_path / "traces.jsonl"
    line = one_line_error(runner.invoke(app, ["generate", "--model", str(small), "--task", f"jsonl:{data}", "--n", "2",
                                              "--out", str(out), "--budget", "4"]))
    assert "huge" in line and "context of 256 tokens" in line and "fits" not in line
    assert not out.exists() or out.read_text() == ""
    sweep = tmp_path / "sweep"
    line = one_line_error(runner.invoke(app, ["sweep", "--model", str(small), "--task", f"jsonl:{data}", "--limit", "2",
                                              "--out", str(sweep), "--budgets", "0,4"]))
    assert "huge" in line and "context of 256 tokens" in line
    assert not (sweep / "rows.jsonl").exists() or (sweep / "rows.jsonl").read_text() == ""


@pytest.mark.parametrize("command", [["train", "{file}", "--dry-run"], ["sweep", "{file}", "--out", "{out}"]])
def test_a_recipe_or_spec_that_is_not_utf8_is_one_line_naming_the_file_and_line(tmp_path, command):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"model: smollm2-135m\n# caf\xe9 in latin-1\n")
    args = [part.format(file=bad, out=tmp_path / "out") for part in command]
    line = one_line_error(runner.invoke(app, args))
    assert str(bad) in line and "line 2" in line and "UTF-8" in line


def test_rows_that_cannot_be_scored_stop_generate_and_train_before_a_model_loads(tmp_path):
    """A row without an answer, or with a list for one, once failed after the model loaded (or after generating)."""
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"id": "ok", "question": "What is 2 + 2?", "answer": "4"}) + "\n"
                    + json.dumps({"id": "no-gold", "question": "What is 3 + 3?"}) + "\n"
                    + json.dumps({"id": "listed", "question": "What is 4 + 4?", "answer": [8]}) + "\n")
    out = tmp_path / "traces.jsonl"
    result = runner.invoke(app, ["generate", "--model", str(tmp_path / "never-loaded"), "--task", f"jsonl:{data}",
                                 "--n", "3", "--out", str(out)])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "rows.jsonl:2 (id 'no-gold')" in result.output and "rows.jsonl:3 (id 'listed')" in result.output
    assert "never-loaded" not in result.output and not out.exists()
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"model: {tmp_path / 'never-loaded'}\ntasks:\n  - name: jsonl:{data}\n    size: 2\n"
                      "    eval_size: 1\n")
    result = runner.invoke(app, ["train", str(recipe), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "rows.jsonl:2 (id 'no-gold')" in result.output, result.output
    assert not (tmp_path / "run").exists()


def test_auto_dtype_resumes_in_the_dtype_a_directory_was_swept_in_though_the_probe_tips(tmp_path, tiny_dir,
                                                                                         monkeypatch):
    """The CPU probe is a timing: on a busy machine a second run of one sweep may measure bf16 faster. Resuming must
    neither be refused (settings differ) nor redo every row in the other dtype."""
    import rlcot.dtypes as dtypes

    args = ["sweep", "--model", str(tiny_dir), "--limit", "2", "--budgets", "0,4", "--max-answer-tokens", "4",
            "--no-gold-logprob", "--out", str(tmp_path / "run")]
    monkeypatch.setattr(dtypes, "matmul_gflops", lambda dtype, **_: 10.0)  # bf16 no faster: fp32
    assert runner.invoke(app, args).exit_code == 0
    monkeypatch.setattr(dtypes, "matmul_gflops", lambda dtype, **_: 30.0 if dtype == dtypes.torch.bfloat16 else 10.0)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "every trace already done" in result.output and "0 traces" in " ".join(result.output.split())


@pytest.mark.parametrize("command, out_name", [(["generate", "--n", "1"], "traces.jsonl"),
                                               (["sweep", "--limit", "1"], "sweep")])
@pytest.mark.parametrize("options", [["--temperature", "-1"], ["--top-p", "2"], ["--temperature", "nan"],
                                     ["--model", "{tmp}/no-such-model"], ["--model", "{tmp}/config-only"]])
def test_bad_arguments_and_models_are_refused_before_anything_is_loaded_or_created(tmp_path, command, out_name,
                                                                                   options):
    (tmp_path / "config-only").mkdir()
    (tmp_path / "config-only" / "config.json").write_text('{"model_type": "llama"}')
    out = tmp_path / "work" / out_name
    line = one_line_error(runner.invoke(app, [*command, *[o.format(tmp=tmp_path) for o in options],
                                              "--out", str(out)]))
    assert any(word in line for word in ("temperature", "top_p", "no-such-model", "config-only"))
    assert not (tmp_path / "work").exists()


def test_plot_and_report_name_a_damaged_line_in_the_middle_of_a_rows_file(tmp_path, tiny_dir):
    run = tmp_path / "run"
    args = ["sweep", "--model", str(tiny_dir), "--limit", "2", "--budgets", "0,4", "--max-answer-tokens", "4",
            "--no-gold-logprob", "--out", str(run)]
    assert runner.invoke(app, args).exit_code == 0
    rows = run / "rows.jsonl"
    lines = rows.read_text().splitlines(keepends=True)
    rows.write_text(lines[0] + '{"key": "x", "model": tor\n' + "".join(lines[1:]))
    for command in (["plot", str(run)], ["report", str(run)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.output
        said = " ".join(result.output.split())
        assert "skipped 1 damaged line" in said and "rows.jsonl:2: invalid JSON" in said, said


@pytest.mark.parametrize("override, said", [
    ("model={tmp}/no-such-model", "no such directory"),
    ("peft.target_modules=[q_prj]", "did you mean 'q_proj'"),
    ("out", "is a file"),
])
def test_a_dry_run_catches_what_the_real_run_would_fail_on_after_loading(tmp_path, override, said):
    """`--dry-run` once passed a missing model directory, a LoRA target the model lacks and an --out that is a file."""
    from rlcot.builtin_models import is_cached

    if override.startswith("peft") and not is_cached("smollm2-135m"):
        from rlcot.builtin_models import ensure_builtin_cached

        ensure_builtin_cached("smollm2-135m")  # the check reads the model's config; it never converts just to check
    recipe = str(Path(__file__).resolve().parents[1] / "recipes" / "arith-grpo-cpu.yaml")
    out = tmp_path / "run"
    if override == "out":
        out.write_text("precious\n")
        extra = []
    else:
        extra = ["--set", override.format(tmp=tmp_path)]
    line = one_line_error(runner.invoke(app, ["train", recipe, "--dry-run", "--out", str(out), *extra]))
    assert said in line


def test_a_second_generate_into_a_file_being_written_stops_at_once(tmp_path):
    from rlcot.jsonl import exclusive

    out = tmp_path / "traces.jsonl"
    with exclusive(out, "rlcot generate"):
        line = one_line_error(runner.invoke(app, ["generate", "--n", "1", "--out", str(out)]))
    assert "is being written by another rlcot generate" in line and f"pid {os.getpid()}" in line
