"""Checking a recipe: every value that cannot work is a ValueError before any model loads.

``check_recipe`` runs when a recipe loads (``rlcot.train.recipe.load_recipe``); its
errors name the key, the bad value and the fix. Names (tasks, verifiers, schemes) are
resolved, nothing is loaded: ``get_task`` and ``get_verifier`` only resolve names.

TRL checks types and a few combinations but almost no ranges: ``max_steps: -5``
trains three epochs, ``learning_rate: .nan`` trains to NaN weights. So one check
here rejects NaN and infinity in every number of the recipe (``1e999`` reads as
inf), and ``TRAINING_RANGES`` bounds the TRL keys whose out-of-range values have no
meaning; both run when the recipe loads, long before a model does. ``check_trl_type``
catches the plain scalar type mistakes TRL would take and fail on at the first step.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Callable

from .recipe import REWARD_KINDS, Recipe, RewardSpec, did_you_mean, join_key, resolved


def check_recipe(recipe: Recipe) -> None:
    """Raise ValueError on the first value that cannot work; resolves names, loads nothing."""
    from rlcot.tasks import get_task

    from .resolve import lora_config  # resolve imports this module

    _check_finite(resolved(recipe), "")
    if not recipe.model.strip():
        raise ValueError("model is empty; give a built-in name (smollm2-135m), a local directory or a hub id")
    if not recipe.tasks:
        raise ValueError("tasks is empty; give at least one, e.g. tasks: [{name: arith}]")
    for i, mix in enumerate(recipe.tasks):
        try:
            get_task(mix.name, data=mix.data, options=mix.options)
        except (ValueError, TypeError) as err:
            raise ValueError(f"tasks.{i}: {err}") from None
        _positive(f"tasks.{i}.weight", mix.weight)
        _positive(f"tasks.{i}.size", mix.size)
        _at_least(f"tasks.{i}.eval_size", mix.eval_size, 0)
    if not recipe.rewards:
        raise ValueError("rewards is empty; give at least one, e.g. rewards: [{scheme: binary}]")
    for i, reward in enumerate(recipe.rewards):
        _check_reward(reward, f"rewards.{i}")
    thinking = recipe.thinking
    if not thinking.caps:
        raise ValueError("thinking.max_thinking_tokens=[] lists no cap; give one, e.g. 128, or several: [32, 64, 128]")
    for cap in thinking.caps:
        _at_least("thinking.max_thinking_tokens", cap, 0)
    _at_least("thinking.min_thinking_tokens", thinking.min_thinking_tokens, 0)
    if thinking.min_thinking_tokens > min(thinking.caps):
        raise ValueError(f"thinking.min_thinking_tokens={thinking.min_thinking_tokens} exceeds "
                         f"max_thinking_tokens={min(thinking.caps)}; lower it or raise the cap")
    if thinking.max_answer_tokens is not None:
        _positive("thinking.max_answer_tokens", thinking.max_answer_tokens)
    if recipe.grpo.get("use_vllm"):  # TRL's vLLM generation: its own prompts, no forcing, no capped column
        if thinking.state_cap:
            raise ValueError("thinking.state_cap needs rlcot's rollouts, which grpo.use_vllm replaces with TRL's "
                             "vLLM generation; drop one of them")
        if any(reward.kind == "within_cap" for reward in recipe.rewards):
            raise ValueError("a within_cap reward reads the capped column of rlcot's rollouts, which grpo.use_vllm "
                             "replaces with TRL's vLLM generation; drop one of them")
    _at_least("eval.every", recipe.eval.every, 0)
    for i, budget in enumerate(recipe.eval.budgets):
        _at_least(f"eval.budgets.{i}", budget, 0)
    _positive("eval.samples", recipe.eval.samples)
    _at_least("eval.temperature", recipe.eval.temperature, 0)
    _at_least("eval.sampled", recipe.eval.sampled, 0)
    if recipe.peft is not None:
        lora_config(recipe)
    if recipe.sft_warmup is not None:
        _check_sft_warmup(recipe.sft_warmup)
    if recipe.control is not None:
        _check_control(recipe.control)
    if not 0 <= recipe.seed < 2**32:  # numpy's seed range; TRL seeds numpy with it
        raise ValueError(f"seed={recipe.seed!r} must be between 0 and 2**32 - 1; fix the recipe or --set seed=0")
    for key in ("seed", "output_dir"):
        if key in recipe.grpo:
            raise ValueError(f"grpo.{key} duplicates the recipe's top-level {key}; set {key}: at the top level")
    check_ranges(recipe.grpo, "grpo")


def _check_reward(reward: RewardSpec, where: str) -> None:
    from rlcot import verifiers
    from rlcot.records import resolve_scheme

    if reward.kind not in REWARD_KINDS:
        near = did_you_mean(str(reward.kind), REWARD_KINDS)
        raise ValueError(f"{where}.kind={reward.kind!r} is not a reward kind{near}; choose {' or '.join(REWARD_KINDS)}")
    if reward.kind == "within_cap":  # 1 or 0 from the rollout's capped column: nothing to verify or scale
        for key, value, default in (("verifier", reward.verifier, None), ("scheme", reward.scheme, "binary")):
            if value != default:
                raise ValueError(f"{where}.{key}={value!r}: a within_cap reward has no {key} (it is 1 when the "
                                 f"thinking closed before its cap, else 0); drop {key}")
        return
    if reward.verifier is not None:
        try:
            verifiers.get_verifier(reward.verifier)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{where}.verifier: {err}") from None
    try:
        resolve_scheme(reward.scheme)
    except ValueError as err:
        raise ValueError(f"{where}.scheme: {err}") from None


def _check_control(control: str) -> None:
    from .control import CONTROLS

    if control not in CONTROLS:
        raise ValueError(f"control={control!r} is not a control{did_you_mean(str(control), CONTROLS)}; "
                         f"choose {', '.join(CONTROLS)}, or null for none")


def _positive(where: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{where}={value!r} must be above 0")


def _at_least(where: str, value: float, low: float) -> None:
    if not value >= low:
        raise ValueError(f"{where}={value!r} must be at least {low}")


def _check_finite(value: Any, where: str) -> None:
    """NaN or infinity anywhere in ``value`` (nested blocks and lists included) is an error naming its key."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}={value!r} is not a finite number; give a finite value in the recipe "
                         f"or --set {where}=...")
    if isinstance(value, (list, tuple)):
        value = dict(enumerate(value))
    for key, item in value.items() if isinstance(value, dict) else ():
        _check_finite(item, join_key(where, key))


_ABOVE_0 = (lambda v: v > 0, "above 0")
_AT_LEAST_0 = (lambda v: v >= 0, "at least 0")
_AT_LEAST_1 = (lambda v: v >= 1, "at least 1")
_SHARE = (lambda v: 0 <= v <= 1, "between 0 and 1")
# TRL keys (GRPOConfig, SFTConfig and their transformers.TrainingArguments) whose out-of-range values TRL
# accepts (checked on TRL 1.16 / transformers 5.23) and that then fail late or train something else.
# Keys TRL already bounds (warmup_steps, torch_empty_cache_steps) are left to it.
TRAINING_RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    # TRL trains num_train_epochs whenever max_steps < 1: -5 once meant ~768 steps
    "max_steps": (lambda v: v == -1 or v >= 1, "at least 1, or -1 to train num_train_epochs instead"),
    "num_train_epochs": _ABOVE_0,
    "learning_rate": _AT_LEAST_0,
    "per_device_train_batch_size": _AT_LEAST_1,
    "per_device_eval_batch_size": _AT_LEAST_1,
    "gradient_accumulation_steps": _AT_LEAST_1,
    "logging_steps": _ABOVE_0,  # below 1: a share of the run's steps
    "save_steps": _ABOVE_0,
    "eval_steps": _ABOVE_0,
    "save_total_limit": _AT_LEAST_0,
    "weight_decay": _AT_LEAST_0,
    "max_grad_norm": _AT_LEAST_0,  # 0 turns clipping off
    "adam_beta1": (lambda v: 0 <= v < 1, "at least 0 and below 1"),
    "adam_beta2": (lambda v: 0 <= v < 1, "at least 0 and below 1"),
    "adam_epsilon": _AT_LEAST_0,
    "dataloader_num_workers": _AT_LEAST_0,
    "eval_delay": _AT_LEAST_0,
    # TRL refuses 1 itself, in these words; 0 and below fail first as "integer modulo by zero" or as a
    # divisibility error
    "num_generations": (lambda v: v >= 1, "at least 2 (GRPO compares completions of one prompt)"),
    "num_generations_eval": (lambda v: v >= 2, "at least 2"),
    "generation_batch_size": _AT_LEAST_1,
    "steps_per_generation": _AT_LEAST_1,
    "num_iterations": _AT_LEAST_1,
    "max_completion_length": _AT_LEAST_1,
    "temperature": (lambda v: v > 0, "above 0 (logits are divided by it)"),
    "top_p": (lambda v: 0 < v <= 1, "above 0 and at most 1"),
    "top_k": (lambda v: v >= 0, "at least 0 (0 turns it off)"),
    "min_p": _SHARE,
    "repetition_penalty": _ABOVE_0,
    "beta": _AT_LEAST_0,
    "epsilon": _AT_LEAST_0,
    "epsilon_high": _AT_LEAST_0,
    "delta": _ABOVE_0,
    "top_entropy_quantile": _SHARE,
    "vllm_gpu_memory_utilization": (lambda v: 0 < v <= 1, "above 0 and at most 1"),
    "num_completions_to_print": _AT_LEAST_0,
    "ref_model_mixup_alpha": _SHARE,
    "ref_model_sync_steps": _AT_LEAST_1,
    "vllm_importance_sampling_clip_min": _AT_LEAST_0,
    "vllm_importance_sampling_clip_max": _AT_LEAST_0,
    "max_tool_calling_iterations": _AT_LEAST_0,
}
LORA_RANGES = {"r": _AT_LEAST_1, "lora_dropout": (lambda v: 0 <= v < 1, "at least 0 and below 1")}


def check_ranges(values: dict, where: str, ranges: dict = TRAINING_RANGES) -> None:
    """NaN/infinity anywhere in ``values``, and a number outside its key's range in ``ranges``: ValueError.

    Values of another type pass: the type checks (``check_trl_type``, TRL's own) name them.
    """
    _check_finite(values, where)
    for key, value in values.items():
        if key in ranges and isinstance(value, (int, float)) and not isinstance(value, bool):
            holds, phrase = ranges[key]
            if not holds(value):
                raise ValueError(f"{where}.{key}={value!r} must be {phrase}; fix the recipe or --set {where}.{key}=...")


SFT_WARMUP_KEYS = ("steps",)  # ours: optimizer steps of the warm-up; other keys are trl.SFTConfig fields


def _check_sft_warmup(options: dict) -> None:
    from trl import SFTConfig

    names = list(SFT_WARMUP_KEYS) + [f.name for f in dataclasses.fields(SFTConfig) if f.init]
    for key in options:
        if key not in names:
            raise ValueError(f"unknown key sft_warmup.{key}{did_you_mean(str(key), names)}; "
                             "use steps or a trl.SFTConfig field (learning_rate, ...)")
    check_ranges(options, "sft_warmup")
    if "steps" in options:
        steps = options["steps"]
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"sft_warmup.steps={steps!r} must be a whole number above 0, e.g. 20")


def check_trl_type(key: str, value: Any, hint: Any) -> None:
    """TRL takes ``learning_rate: "abc"`` and fails at the first step; catch plain scalar mistakes now."""
    args = [arg for arg in typing.get_args(hint) if arg is not type(None)] if typing.get_origin(hint) in (
        typing.Union, types.UnionType) else [hint]
    if value is None or len(args) != 1 or args[0] not in (int, float, bool):
        return
    kind = args[0]
    ok = isinstance(value, bool) if kind is bool else (
        isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool))
    if not ok:
        expected = {int: "a whole number", float: "a number", bool: "true or false"}[kind]
        raise ValueError(f"grpo.{key}={value!r}: trl.GRPOConfig expects {expected}; fix the recipe "
                         f"or --set grpo.{key}=...")

