"""Seconds per GRPO step on CPU: TRL's own generation (``model.generate``) vs our budget-forced rollout.

Both sides train ``recipes/arith-grpo-cpu.yaml`` (the default model, LoRA, 8
completions of one prompt per step) through the same ``GRPOTrainer`` built by
``rlcot.train.trainer.build_trainer``; the only difference is who generates:

- **TRL**: the trainer's ``rollout_func`` is removed, so TRL tokenizes the prompts and
  calls ``model.generate`` (its ``_generate_single_turn``) with the same temperature and
  ``max_completion_length`` (thinking cap + answer cap + margin, from ``resolve_run``);
- **ours**: ``BudgetForcedRollout`` (``rlcot.generation.hf``: continuous batching,
  budget forcing, forced tokens masked).

Same prompts in the same order (same seed), same model weights at the start, same
token limits, same rewards, same optimizer. The completions differ: TRL's sampler and
ours draw different random numbers, and ours forces ``</think>`` and the answer cue at
the cap, so the tokens per step are printed beside the time. The first step of each
side is a warm-up and not counted. Each side's whole run is timed under the load check
of ``bench/common.py``; the time in generation is measured by wrapping the
trainer's ``_generate`` on both sides alike.

Run: ``make bench``, or ``.venv/bin/python bench/train.py [--steps N]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from common import LoadLog, flag, machine, warn_if_busy_now
from transformers import TrainerCallback

from rlcot.models import load_policy
from rlcot.thinking import ThinkingProtocol
from rlcot.train.data import build_data
from rlcot.train.recipe import EvalSpec, load_recipe
from rlcot.train.resolve import resolve_run
from rlcot.train.trainer import build_trainer

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "arith-grpo-cpu.yaml"


class StepClock(TrainerCallback):
    """Wall seconds of every optimizer step, and the completion tokens TRL logged for it."""

    def __init__(self):
        self.seconds: list[float] = []
        self.tokens: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self._start)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "completions/mean_length" in logs:
            self.tokens.append(logs["completions/mean_length"] * args.per_device_train_batch_size)


def run_side(name: str, recipe, steps: int, scratch: Path, log: LoadLog) -> dict:
    model, tokenizer = load_policy(recipe.model, device="cpu", dtype=torch.float32)
    recipe = replace(recipe, grpo={**recipe.grpo, "max_steps": steps, "save_strategy": "no"})
    run = resolve_run(recipe, "cpu", scratch / name)
    protocol = ThinkingProtocol()
    clock = StepClock()
    trainer = build_trainer(run, model, tokenizer, protocol, build_data(recipe, tokenizer, protocol), callbacks=[clock])
    if name == "TRL model.generate":
        trainer.rollout_func = None  # TRL's own path: _generate_single_turn -> model.generate
    generate_s: list[float] = []
    inner = trainer._generate

    def timed_generate(prompts):
        start = time.perf_counter()
        try:
            return inner(prompts)
        finally:
            generate_s.append(time.perf_counter() - start)

    trainer._generate = timed_generate
    _, timing = log.time(name, trainer.train)
    kept = slice(1, None)  # step 1 warms up kernels and allocators
    return {"name": name, "step": statistics.mean(clock.seconds[kept]), "generate": statistics.mean(generate_s[kept]),
            "tokens": statistics.mean(clock.tokens[kept]), "timing": timing, "steps": len(clock.seconds) - 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="GRPO steps per side; the first is a warm-up (default 4)")
    args = parser.parse_args()
    if args.steps < 2:
        parser.error(f"--steps {args.steps}: need at least 2 (the first is a warm-up)")
    warn_if_busy_now()
    recipe = replace(load_recipe(RECIPE), sft_warmup=None, eval=EvalSpec(every=0))
    print(f"{machine()}; recipe {RECIPE.name} without its SFT warm-up (the base policy), "
          f"{args.steps} steps per side, first one not counted")
    log = LoadLog()
    with tempfile.TemporaryDirectory() as scratch:
        sides = [run_side(name, recipe, args.steps, Path(scratch), log)
                 for name in ("ours (budget-forced rollout)", "TRL model.generate")]
    print(f"\n{'':>30} | {'s/step':>7} | {'generate s':>10} | {'rest s':>7} | {'tokens/step':>11} | {'gen tok/s':>9}")
    for side in sides:
        rest = side["step"] - side["generate"]
        print(f"{side['name']:>30} | {side['step']:>7.1f} | {side['generate']:>10.1f} | {rest:>7.1f} | "
              f"{side['tokens']:>11.0f} | {side['tokens'] / side['generate']:>9.1f} {flag(side['timing'])}")
    ours, theirs = sides
    print(f"ours is {theirs['step'] / ours['step']:.2f}x faster per step "
          f"({theirs['generate'] / ours['generate']:.2f}x in generation; per generated token "
          f"{(theirs['generate'] / theirs['tokens']) / (ours['generate'] / ours['tokens']):.2f}x) "
          f"{flag(ours['timing'], theirs['timing'])}")
    log.report()


if __name__ == "__main__":
    main()
