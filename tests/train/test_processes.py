"""Training as users launch it: a subprocess killed with SIGKILL and resumed, and two processes with accelerate."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": "", "TRL_EXPERIMENTAL_SILENCE": "1"}


def write_recipe(path: Path, model_dir: Path, out: Path, **grpo) -> Path:
    recipe = {"model": str(model_dir), "output_dir": str(out),
              "tasks": [{"name": "arith", "size": 16, "eval_size": 0}],
              "rewards": [{"verifier": "tests.train.plugins:even_length"}],
              "thinking": {"max_thinking_tokens": 6, "max_answer_tokens": 4},
              "grpo": {"num_generations": 4, "per_device_train_batch_size": 4, "learning_rate": 5e-3,
                       "save_steps": 1, "logging_steps": 1, "report_to": "none", "bf16": False, **grpo}}
    path.write_text(yaml.safe_dump(recipe))
    return path


def reward_steps(out: Path) -> list[int]:
    return [line["step"] for line in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
            if "reward" in line]


def test_a_run_killed_with_sigkill_resumes_losing_at_most_the_step_in_flight(tmp_path, tiny_dir):
    out = tmp_path / "run"
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_dir, out, max_steps=8)
    command = [sys.executable, "-m", "rlcot", "train", str(recipe)]
    victim = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and victim.poll() is None and not (out / "checkpoint-3").is_dir():
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    saved = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    assert saved and saved[-1] < 8, "the run must be killed mid-way for this test to mean anything"
    resumed = subprocess.run(command + ["--resume"], env=ENV, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = json.loads((out / "checkpoint-8" / "trainer_state.json").read_text())
    assert state["global_step"] == 8
    # every step logged once: steps after the resumed checkpoint were dropped from the log and redone
    assert reward_steps(out) == list(range(1, 9))


def test_two_cpu_processes_with_accelerate_complete_two_steps(tmp_path, tiny_dir):
    out = tmp_path / "run"
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_dir, out, max_steps=2)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(ROOT / "recipes" / "accelerate" / "cpu-2proc.yaml"), "-m", "rlcot", "train", str(recipe)]
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert reward_steps(out) == [1, 2]
