"""Seconds per GRPO step on CPU: TRL's default path (``model.generate``) vs ours, per step and per token.

Both sides train ``recipes/arith-grpo-cpu.yaml`` without its SFT warm-up (the default
model, LoRA, two groups of 8 completions per step) through the same ``GRPOTrainer`` built
by ``rlcot.train.trainer.build_trainer``, in the same dtype: the CPU probe
(``rlcot.dtypes``) runs once and its bf16 choice is pinned for both. What differs:

- **TRL**: the trainer's ``rollout_func`` is removed, so TRL tokenizes the prompts and
  calls ``model.generate`` (its ``_generate_single_turn``) on the policy with the same
  temperature and ``max_completion_length`` (thinking cap + answer cap + margin, from
  ``resolve_run``); the prompts are built with the chat template's default system
  message (SmolLM2's "You are a helpful AI assistant named SmolLM, ...").
- **ours**: ``BudgetForcedRollout`` (``rlcot.generation.hf``: one batch per step, budget
  forcing, forced tokens masked), sampling from a merged bf16 copy of the policy where the
  trainer computes in bf16 (``rlcot.train.sampling_copy``), with the recipe option
  ``thinking.system_prompt: ""`` (an empty system message: 16 fewer tokens a prompt).

Same rows in the same order (same seed), same model weights at the start, same token
limits, same rewards, same optimizer. The completions differ: TRL's sampler and ours draw
different random numbers, and ours forces ``</think>`` and the answer cue at the cap, so
each side's time is also given per completion token (the tokens TRL logs: for ours, the
sampled ones, forced tokens not counted). The first step of each side is a warm-up and not
counted. Each side's whole run is timed under the load check of ``bench/common.py``; the
time in generation is measured by wrapping the trainer's ``_generate`` on both sides alike.

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
from rlcot.train.recipe import EvalSpec, load_recipe
from rlcot.train.resolve import resolve_run
from rlcot.train.trainer import build_trainer

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "arith-grpo-cpu.yaml"
OUR_SYSTEM_PROMPT = ""  # thinking.system_prompt on our side; TRL's side keeps the template's default
TRL_SIDE = "TRL model.generate"


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
    clock = StepClock()
    trainer = build_trainer(run, model, tokenizer, callbacks=[clock])  # prompts: the recipe's system message
    if name == TRL_SIDE:
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
    base = replace(load_recipe(RECIPE), sft_warmup=None, eval=EvalSpec(every=0))
    with tempfile.TemporaryDirectory() as scratch:
        probed = resolve_run(base, "cpu", Path(scratch) / "probe")  # the dtype probe, once for both sides
        bf16 = probed.grpo.bf16
        base = replace(base, grpo={**base.grpo, "bf16": bf16})
        ours = replace(base, thinking=replace(base.thinking, system_prompt=OUR_SYSTEM_PROMPT))
        print(f"{machine()}; recipe {RECIPE.name} without its SFT warm-up (the base policy), "
              f"{args.steps} steps per side, first one not counted")
        why = next((note for note in probed.notes if note.startswith("bf16=")), "set by the recipe")
        print(f"both sides: grpo.bf16={bf16} ({why})")
        sampled = "a merged bf16 copy of the policy" if bf16 else "the policy (fp32: no copy)"
        print(f"ours: thinking.system_prompt={OUR_SYSTEM_PROMPT!r}, rollouts sampled from {sampled}; "
              "TRL: the chat template's default system message, model.generate on the policy")
        log = LoadLog()
        sides = [run_side("ours (budget-forced rollout)", ours, args.steps, Path(scratch), log),
                 run_side(TRL_SIDE, base, args.steps, Path(scratch), log)]
    print(f"\n{'':>30} | {'s/step':>7} | {'generate s':>10} | {'rest s':>7} | {'tokens/step':>11} | "
          f"{'ms/token':>8} | {'gen ms/token':>12}")
    for side in sides:
        rest = side["step"] - side["generate"]
        print(f"{side['name']:>30} | {side['step']:>7.1f} | {side['generate']:>10.1f} | {rest:>7.1f} | "
              f"{side['tokens']:>11.0f} | {1e3 * side['step'] / side['tokens']:>8.1f} | "
              f"{1e3 * side['generate'] / side['tokens']:>12.1f} {flag(side['timing'])}")
    ours, theirs = sides
    per_token = (theirs["step"] / theirs["tokens"]) / (ours["step"] / ours["tokens"])
    gen_per_token = (theirs["generate"] / theirs["tokens"]) / (ours["generate"] / ours["tokens"])
    rest = (theirs["step"] - theirs["generate"]) / (ours["step"] - ours["generate"])
    print(f"ours is {theirs['step'] / ours['step']:.2f}x faster per step, {per_token:.2f}x per completion token "
          f"({theirs['generate'] / ours['generate']:.2f}x in generation, {rest:.2f}x in the rest; "
          f"per generated token {gen_per_token:.2f}x) {flag(ours['timing'], theirs['timing'])}")
    log.report()


if __name__ == "__main__":
    main()
