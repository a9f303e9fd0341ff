"""What a person sees in the terminal: ``rlcot train``'s bars and step lines, and no library noise.

``rlcot train`` and ``rlcot sweep`` run as users run them, in subprocesses, their stdout
and stderr read whole: a bar per stage and one line per logged step, TRL's raw log dicts
and the libraries' bars in the run's ``train.log`` instead, and none of the warnings
``rlcot.quiet.NOISE`` names, in training or in a sweep of the trained (LoRA) model.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import warnings

import pytest
import yaml

from rlcot.quiet import NOISE, filter_noise, library_logs_to
from rlcot.train.callbacks import TRAIN_LOG, step_line
from tests.train.test_processes import ENV, write_recipe

RUN_ENV = {**ENV, "OMP_NUM_THREADS": "1"}
# what transformers, TRL and datasets print when left alone: their dicts, tqdm bars, datasets' map bars
LIBRARY_OUTPUT = ("{'loss'", "'train_runtime'", "it/s]", "examples/s]", "Map:", "Loading weights",
                  "Writing model shards", "FutureWarning")


def run_cli(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "rlcot", *args], env=RUN_ENV, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_dir):
    """A LoRA run through ``rlcot train``: a 1-step SFT warm-up, 2 GRPO steps, eval curves on one held-out row."""
    root = tmp_path_factory.mktemp("terminal")
    out = root / "run"
    path = write_recipe(root / "recipe.yaml", tiny_dir, out, max_steps=2)
    recipe = yaml.safe_load(path.read_text())
    recipe["tasks"][0]["eval_size"] = 1
    recipe.update(sft_warmup={"steps": 1}, eval={"budgets": [0], "sampled": 0},
                  peft={"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"], "task_type": "CAUSAL_LM"})
    path.write_text(yaml.safe_dump(recipe))
    return out, run_cli("train", str(path), "--device", "cpu")


def logged_steps(out) -> list[int]:
    return [line["step"] for line in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
            if "reward" in line]


def test_train_shows_a_bar_per_stage_and_one_line_per_logged_step_not_the_libraries_output(trained):
    out, text = trained
    for printed in LIBRARY_OUTPUT:
        assert printed not in text
    lines = re.findall(r"^GRPO step (\d+)/2: (.*)$", text, re.M)
    assert [int(step) for step, _ in lines] == logged_steps(out) == [1, 2]
    for _, line in lines:
        assert re.search(r"reward [+-]\d\.\d{3}, correct \d\.\d\d, thinking \d+\.\d tok, .*loss .*s/step$", line)
    assert len(re.findall(r"^SFT warm-up step 1/1: .*loss", text, re.M)) == 1
    for bar in ("SFT warm-up steps", "GRPO steps", "eval arith, step 0", "eval arith, step 2"):
        assert len(re.findall(rf"^{bar}.*━", text, re.M)) == 1  # drawn once where the output is not a terminal


def test_the_run_log_file_holds_trls_raw_log_dicts(trained):
    out, _ = trained
    log = (out / TRAIN_LOG).read_text()
    assert len(re.findall(r"SFT warm-up step 1: \{'loss'", log)) == 1
    assert [int(step) for step in re.findall(r"GRPO step (\d+): \{'loss'", log)] == logged_steps(out)
    assert "'outcomes/correct'" in log and "'train_runtime'" in log


def test_a_sweep_of_the_trained_lora_model_prints_no_checkpointing_deprecation(trained, tmp_path):
    from rlcot.models import load_policy

    out, _ = trained
    with warnings.catch_warnings(record=True) as seen:  # the noise is real: merging the adapter asks for it
        warnings.simplefilter("always")
        load_policy(str(out), device="cpu")
    assert any("is_gradient_checkpointing" in str(warning.message) for warning in seen)
    text = run_cli("sweep", "--out", str(tmp_path / "sweep"), "--model", f"{out}@last", "--budgets", "0",
                   "--limit", "1", "--device", "cpu")
    assert re.search(r"^run@2: budgets \[0\] .* 1/1", text, re.M)  # the final weights, swept
    assert "is_gradient_checkpointing" not in text and "FutureWarning" not in text


@pytest.mark.parametrize("message, module, silenced", [
    ("`is_gradient_checkpointing` is deprecated and will be removed in v6.", "transformers.modeling_utils", True),
    ("`is_gradient_checkpointing` is deprecated and will be removed in v6.", "my_project.train", False),  # not theirs
    ("`torch_dtype` is deprecated! Use `dtype` instead!", "transformers.modeling_utils", False),  # a user's own call
])
def test_the_noise_filters_match_one_message_from_one_module_never_a_whole_category(message, module, silenced):
    assert NOISE
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        filter_noise()
        warnings.warn_explicit(message, FutureWarning, filename="x.py", lineno=1, module=module)
    assert (not seen) == silenced


def test_step_lines_show_the_keys_a_stage_logs_in_a_fixed_order():
    logs = {"loss": 0.0123, "reward": 0.25, "outcomes/correct": 0.25, "thinking/mean_tokens": 31.5,
            "learning_rate": 5e-05, "completions/mean_length": 40.0, "flag": True}
    assert step_line("GRPO", 3, 10, logs, 1.234) == ("GRPO step 3/10: reward +0.250, correct 0.25, thinking 31.5 tok, "
                                                     "loss 0.0123, lr 5e-05, 1.2 s/step")
    assert step_line("SFT warm-up", 1, 2, {"loss": 10.5, "mean_token_accuracy": 0.03}, None) == \
        "SFT warm-up step 1/2: token accuracy 0.030, loss 10.5"


def test_library_logs_go_to_the_file_inside_and_back_to_their_handlers_after(tmp_path):
    import datasets
    from transformers.utils import logging as transformers_logging

    transformers = logging.getLogger("transformers")
    before = (list(transformers.handlers), transformers.propagate, transformers_logging.is_progress_bar_enabled(),
              datasets.is_progress_bar_enabled())
    with library_logs_to(tmp_path / "train.log"):
        assert not transformers_logging.is_progress_bar_enabled() and not datasets.is_progress_bar_enabled()
        transformers.warning("a library warning")
        logging.getLogger("rlcot.train").info("GRPO step 1: {'loss': 0.5}")
    assert (list(transformers.handlers), transformers.propagate, transformers_logging.is_progress_bar_enabled(),
            datasets.is_progress_bar_enabled()) == before
    log = (tmp_path / "train.log").read_text()
    assert "WARNING transformers: a library warning" in log and "INFO rlcot.train: GRPO step 1: {'loss': 0.5}" in log


@pytest.mark.parametrize("width", [60, 80, 120])
def test_a_sweep_bars_numbers_stay_whole_on_a_narrow_terminal_the_long_label_gives_way(width):
    import io

    from rich.console import Console

    from rlcot.evals.progress import SweepBar

    label = "eval chain-sampled, step 10: budgets [16, 32, 64, 128, 256]"
    console = Console(file=io.StringIO(), width=width, force_terminal=False)
    bar = SweepBar(console)
    bar.start(label, 1024)
    bar.bar.update(bar.job, completed=512, speed="12,345 tok/s")
    console.print(bar.bar.get_renderable())
    bar.close()
    line = console.file.getvalue().splitlines()[-1]
    assert len(line) <= width
    # the counts, the speed and both times whole
    assert re.search(r" 512/1024 12,345 tok/s \d:\d\d:\d\d [-\d]:[-\d]{2}:[-\d]{2}$", line), line
    assert line.startswith(label if width >= 120 else label[:8]) and ("…" in line) == (width < 120)
