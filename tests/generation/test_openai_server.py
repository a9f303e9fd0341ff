"""The server backend against a real ``transformers serve`` on localhost, serving the default model.

``transformers serve`` takes only text prompts and returns only text, so this is the
re-tokenizing dialect (``rlcot.generation.openai``): greedy traces are compared with
the hf backend's on the same rows, and a sweep survives its server being killed.
Slow-ish (two servers start, ~5 s each): marked ``default_model``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from rlcot.builtin_models import ensure_builtin_cached
from rlcot.generation import Budget, get_generator
from rlcot.generation.base import SamplingConfig
from rlcot.models import load_tokenizer
from rlcot.tasks import get_task
from rlcot.thinking import ThinkingProtocol

pytestmark = pytest.mark.default_model
ROWS, CAP = 4, 16
SECRET = "sk-never-written-4242"  # sent as the API key (transformers serve ignores it)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(model_dir: Path, port: int) -> subprocess.Popen:
    """``transformers serve MODEL_DIR`` on ``port``, CPU, one thread; returns once ``/health`` answers."""
    command = [str(Path(sys.executable).with_name("transformers")), "serve", str(model_dir), "--host", "127.0.0.1",
               "--port", str(port), "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                return server
        except requests.ConnectionError:
            pass
        if server.poll() is not None:
            raise RuntimeError(f"transformers serve exited with {server.returncode}")
        time.sleep(0.2)
    stop_server(server)
    raise RuntimeError("transformers serve did not answer /health within 90 s")


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGKILL)  # its own session: the server and nothing else
        server.wait()


@pytest.fixture(scope="session")
def model_dir() -> Path:
    return ensure_builtin_cached("smollm2-135m")


@pytest.fixture(scope="session")
def server_url(model_dir):
    port = free_port()
    server = start_server(model_dir, port)
    yield f"http://127.0.0.1:{port}/v1"
    stop_server(server)


def test_greedy_traces_agree_with_the_hf_backend_and_forced_tokens_are_exact(server_url, model_dir, default_policy):
    model, tokenizer = default_policy
    protocol = ThinkingProtocol()
    task = get_task("arith")
    requests_ = task.requests(task.rows(ROWS, seed=0), tokenizer, protocol)
    budget = Budget(max_thinking_tokens=CAP, max_answer_tokens=8)
    served_tokenizer, generation_config = load_tokenizer(str(model_dir))
    served = get_generator("openai", str(model_dir), served_tokenizer, protocol, generation_config=generation_config,
                           base_urls=[server_url], max_in_flight=2)
    ours = served.generate(requests_, SamplingConfig(), budget)
    theirs = get_generator("hf", model, tokenizer, protocol).generate(requests_, SamplingConfig(), budget)
    assert served.token_ids is False  # transformers serve: text prompts only
    forced = tokenizer.encode(protocol.forced_close, add_special_tokens=False) + \
        tokenizer.encode(task.answer_cue, add_special_tokens=False)
    for trace in ours:
        assert trace.thinking_tokens <= CAP and trace.finish_reason in ("capped", "closed", "eos", "length")
        if trace.capped:  # the forced span is our tokens, exactly, right after the cap-th thinking token
            assert trace.thinking_tokens == CAP and sum(trace.forced) == len(forced)
            assert trace.completion_ids[CAP : CAP + len(forced)] == forced
    # Measured on 32 rows at cap 32 (rlcot.generation.openai's docstring): 31 identical, one answer changed
    # after the cap by the server's re-tokenizing of the joined prompt. Allow one row here.
    same = sum(a.completion == b.completion for a, b in zip(ours, theirs))
    assert same >= ROWS - 1, [(a.completion, b.completion) for a, b in zip(ours, theirs)]


def sweep_command(out: Path, url: str, model_dir: Path) -> list[str]:
    return [sys.executable, "-m", "rlcot.cli", "sweep", "--out", str(out), "--backend", "openai", "--base-url", url,
            "--model", str(model_dir), "--task", "arith", "--limit", "4", "--budgets", "4,8", "--max-in-flight", "1",
            "--max-answer-tokens", "4", "--no-gold-logprob", "--server-arg", "retries=1",
            "--server-arg", "backoff=0.1"]


def test_killing_the_server_mid_sweep_loses_no_stored_row_and_a_rerun_resumes(model_dir, tmp_path):
    port, out = free_port(), tmp_path / "sweep"
    url = f"http://127.0.0.1:{port}/v1"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200", "OPENAI_API_KEY": SECRET}
    server = start_server(model_dir, port)
    try:
        sweep = subprocess.Popen(sweep_command(out, url, model_dir), env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        rows = out / "rows.jsonl"
        while sweep.poll() is None and not (rows.is_file() and rows.read_text().count("\n") >= 4):
            time.sleep(0.05)
        stop_server(server)  # two (row, sample) units of two budgets each are stored: the first chunk
        _, stderr = sweep.communicate(timeout=120)
        assert sweep.returncode == 2, stderr
        error = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(error) == 1 and url in error[0] and "a rerun resumes" in error[0], stderr
        before = rows.read_text()
        assert 4 <= before.count("\n") < 8
        server = start_server(model_dir, port)
        rerun = subprocess.run(sweep_command(out, url, model_dir), env=env, capture_output=True, text=True,
                               timeout=300)
        assert rerun.returncode == 0, rerun.stderr
    finally:
        stop_server(server)
    after = rows.read_text()
    assert after.startswith(before)  # every stored row kept, byte for byte
    keys = [json.loads(line)["key"] for line in after.splitlines()]
    assert len(keys) == len(set(keys)) == 4 * 2
    assert f"{8 - before.count(chr(10))} traces written, {before.count(chr(10))} already there" in rerun.stdout
    assert url in (out / "rows.jsonl.run.json").read_text()  # where it ran: recorded; the key: nowhere
    assert not any(SECRET in path.read_text() for path in out.rglob("*") if path.is_file())
