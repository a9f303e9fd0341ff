"""Training recipes: one YAML file, our fields in one dataclass, TRL's in a ``grpo:`` block.

``rlcot train RECIPE.yaml --set thinking.max_thinking_tokens=64`` reads a recipe with
precedence defaults < YAML < ``--set``. Our own fields (tasks, rewards, thinking
budget, evaluation, LoRA) live in the frozen dataclasses below, documented once, and
are checked here with errors that name the key, the bad value and the fix. The
``grpo:`` block goes verbatim to ``trl.GRPOConfig`` so TRL validates it itself; we
only add defaults that a small CPU run needs and say which.

A checked recipe is resolved once, by ``resolve_run``, into everything a run needs
(``ResolvedRun``): TRL's config, the LoRA config, the rollouts' thinking budget and
answer cap, the held-out eval curves, and the notes on each default chosen. The CLI,
the trainer, the demo and the benchmark all take that one object; none of them builds
a ``GRPOConfig`` or works out the answer cap again.

TRL checks types and a few combinations but almost no ranges: ``max_steps: -5``
trains three epochs, ``learning_rate: .nan`` trains to NaN weights. So one check
here rejects NaN and infinity in every number of the recipe (``1e999`` reads as
inf), and ``TRAINING_RANGES`` bounds the TRL keys whose out-of-range values have no
meaning; both run when the recipe loads, long before a model does.

YAML trap: PyYAML follows YAML 1.1, where ``1e-4`` is a *string* (1.1 floats need a
dot: ``1.0e-4``). A learning rate as a string passes TRL's config and fails much
later in the optimizer, so recipes and ``--set`` values are read with a loader that
also takes YAML 1.2 floats.

Nothing here loads a model or data; ``get_task`` and ``get_verifier`` only resolve names.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import re
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import yaml

from ..files import read_text

if TYPE_CHECKING:
    from ..generation import Budget

CPU_DEFAULTS = {"use_cpu": True}  # without it TRL's bf16=True default fails on CPU; bf16 is chosen by measuring
RUN_DEFAULTS = {"report_to": "none", "logging_steps": 1, "save_strategy": "steps"}
# Checkpoints: a LoRA checkpoint (adapter + its optimizer state) is tens of MB and saves in
# well under a second, so LoRA runs save every step and a kill loses at most the step in
# flight; the last 3 are kept (the in-run eval curves already cover the run). A full
# fine-tune's checkpoint is ~3x the model (weights + Adam moments): every 10 steps, all kept.
LORA_CHECKPOINTS = {"save_steps": 1, "save_total_limit": 3}
FULL_CHECKPOINTS = {"save_steps": 10}
COMPLETION_MARGIN = 32  # tokens for the closing think tag, the answer cue and EOS beyond the two caps


@dataclass(frozen=True)
class TaskMix:
    name: str  # arith, gsm8k, sudoku, crossword, jsonl:PATH (rlcot.tasks.get_task names)
    weight: float = 1.0  # mixing weight when several tasks
    size: int = 256  # training rows drawn from it
    data: str | None = None  # file of a file-backed task
    options: dict = field(default_factory=dict)  # task options (unanswerable: 0.3, size: 4, ...) -> get_task(**)
    eval_size: int = 32  # held-out rows (built with another seed, never trained on)


@dataclass(frozen=True)
class RewardSpec:
    verifier: str | None = None  # None: each task's own verifier; else a verifiers name / module:attr
    weight: float = 1.0  # TRL reward_weights entry
    scheme: str = "binary"  # binary, default (the hedge scheme +1/+0.5/0/-2/-4), or a YAML file


@dataclass(frozen=True)
class ThinkingSpec:
    max_thinking_tokens: int = 128  # rollout cap
    min_thinking_tokens: int = 0  # s1 'Wait' extension below this
    max_answer_tokens: int | None = None  # None: the largest of the tasks' own answer caps


@dataclass(frozen=True)
class EvalSpec:
    every: int = 0  # steps between budget curves on held-out rows (0: only at start and end)
    budgets: tuple[int, ...] = (0, 32, 64, 128)  # thinking budgets of the curve
    samples: int = 1  # completions per row and budget
    temperature: float = 0.0


@dataclass(frozen=True)
class Recipe:
    model: str = "smollm2-135m"  # a built-in name, a local directory or a hub id
    tasks: tuple[TaskMix, ...] = (TaskMix("arith"),)
    rewards: tuple[RewardSpec, ...] = (RewardSpec(),)
    thinking: ThinkingSpec = field(default_factory=ThinkingSpec)
    peft: dict | None = None  # fields for peft.LoraConfig; None = full fine-tune
    grpo: dict = field(default_factory=dict)  # passed verbatim to trl.GRPOConfig
    eval: EvalSpec = field(default_factory=EvalSpec)
    seed: int = 0  # also GRPOConfig.seed
    output_dir: str = "runs/train"  # also GRPOConfig.output_dir
    sft_warmup: dict | None = None  # optional TRL SFT warm-up on the answer format: {steps: 20, learning_rate: 1e-4}


# ---------------------------------------------------------------- reading


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats such as ``1e-4`` as floats."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_value(text: str) -> Any:
    """A ``--set`` value as YAML would read it (``64``, ``5e-6``, ``[q_proj, v_proj]``, ``null``)."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return text  # an unquoted string YAML cannot read, e.g. "a: b: c"


def load_recipe(path: str | Path | None, overrides: Sequence[str] = ()) -> Recipe:
    """A checked ``Recipe``: defaults < the YAML file at ``path`` < ``overrides`` (``key=value``)."""
    merged = resolved(Recipe())
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"recipe {str(path)!r} does not exist; give a YAML file, e.g. recipes/arith-grpo-cpu.yaml")
        try:
            values = yaml.load(read_text(path, "recipe"), Loader=_Loader)
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
        if values is not None and not isinstance(values, dict):
            raise ValueError(f"{path}: a recipe is a mapping of fields, got {type(values).__name__}")
        merged = _merge(merged, values or {})
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r} is not key=value; write e.g. --set thinking.max_thinking_tokens=64")
        _set_dotted(merged, key.strip(), parse_value(text))
    recipe = _build(Recipe, merged, "")
    check_recipe(recipe)
    return recipe


def _merge(base: Any, update: Any) -> Any:
    """Mappings merge key by key; anything else (lists included) replaces."""
    if isinstance(base, dict) and isinstance(update, dict):
        return {**base, **{key: _merge(base.get(key), value) for key, value in update.items()}}
    return update


def _set_dotted(tree: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node: Any = tree
    for depth, part in enumerate(parts[:-1]):
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):  # tasks.1.name=gsm8k on a one-task recipe adds a task
            index = _index(node, part, where, key, allow_append=True)
            if index == len(node):
                node.append({})
            node = node[index]
        elif isinstance(node, dict):
            if node.get(part) is None:  # peft.r=16 on a recipe without peft starts the block
                node[part] = {}
            node = node[part]
        else:
            raise ValueError(f"--set {key}: {where!r} is a {type(node).__name__}, not a block with fields")
    last = parts[-1]
    if isinstance(node, list):
        index = _index(node, last, key, key, allow_append=True)
        node[index:index + 1] = [value]
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ValueError(f"--set {key}: {'.'.join(parts[:-1])!r} is a {type(node).__name__}, not a block with fields")


def _index(items: list, part: str, where: str, key: str, allow_append: bool = False) -> int:
    limit = len(items) + (1 if allow_append else 0)
    if not part.isdigit() or int(part) >= limit:
        raise ValueError(f"--set {key}: {where!r} needs a list index below {limit} (the list has {len(items)} entries)")
    return int(part)


# ---------------------------------------------------------------- typing our fields


def _build(cls: type, values: Any, where: str) -> Any:
    if isinstance(values, str) and cls is TaskMix:  # tasks: [arith, gsm8k] is shorthand for names
        values = {"name": values}
    if not isinstance(values, dict):
        raise ValueError(f"{where or 'recipe'}: expected a mapping of {cls.__name__} fields, got {values!r}")
    names = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in names:
            raise ValueError(f"unknown key {_join(where, key)!r}{did_you_mean(str(key), names)}; "
                             f"{cls.__name__} fields are {', '.join(names)}")
    hints = typing.get_type_hints(cls)
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in values]
    if missing:
        raise ValueError(f"{where or 'recipe'}: {cls.__name__} needs {', '.join(missing)}")
    return cls(**{key: _typed(value, hints[key], _join(where, key)) for key, value in values.items()})


def _typed(value: Any, hint: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [arg for arg in args if arg is not type(None)]
        return _typed(value, inner, where)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            value = [value]  # budgets: 64 means (64,)
        return tuple(_typed(item, args[0], f"{where}.{i}") for i, item in enumerate(value))
    expected = {int: "a whole number", float: "a number", str: "a string", bool: "true or false", dict: "a mapping"}
    ok = {
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
        bool: isinstance(value, bool),
        dict: isinstance(value, dict),
    }[hint]
    if not ok:
        raise ValueError(f"{where}: {value!r} is not {expected[hint]}; fix the recipe or --set {where}=...")
    return float(value) if hint is float else value


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def did_you_mean(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ---------------------------------------------------------------- checking values


def check_recipe(recipe: Recipe) -> None:
    """Raise ValueError on the first value that cannot work; resolves names, loads nothing."""
    from rlcot.tasks import get_task

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
    _at_least("thinking.max_thinking_tokens", thinking.max_thinking_tokens, 0)
    _at_least("thinking.min_thinking_tokens", thinking.min_thinking_tokens, 0)
    if thinking.min_thinking_tokens > thinking.max_thinking_tokens:
        raise ValueError(f"thinking.min_thinking_tokens={thinking.min_thinking_tokens} exceeds "
                         f"max_thinking_tokens={thinking.max_thinking_tokens}; lower it or raise the cap")
    if thinking.max_answer_tokens is not None:
        _positive("thinking.max_answer_tokens", thinking.max_answer_tokens)
    _at_least("eval.every", recipe.eval.every, 0)
    for i, budget in enumerate(recipe.eval.budgets):
        _at_least(f"eval.budgets.{i}", budget, 0)
    _positive("eval.samples", recipe.eval.samples)
    _at_least("eval.temperature", recipe.eval.temperature, 0)
    if recipe.peft is not None:
        lora_config(recipe)
    if recipe.sft_warmup is not None:
        _check_sft_warmup(recipe.sft_warmup)
    if not 0 <= recipe.seed < 2**32:  # numpy's seed range; TRL seeds numpy with it
        raise ValueError(f"seed={recipe.seed!r} must be between 0 and 2**32 - 1; fix the recipe or --set seed=0")
    for key in ("seed", "output_dir"):
        if key in recipe.grpo:
            raise ValueError(f"grpo.{key} duplicates the recipe's top-level {key}; set {key}: at the top level")
    check_ranges(recipe.grpo, "grpo")


def _check_reward(reward: RewardSpec, where: str) -> None:
    from rlcot import verifiers
    from rlcot.records import resolve_scheme

    if reward.verifier is not None:
        try:
            verifiers.get_verifier(reward.verifier)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{where}.verifier: {err}") from None
    try:
        resolve_scheme(reward.scheme)
    except ValueError as err:
        raise ValueError(f"{where}.scheme: {err}") from None


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
        _check_finite(item, _join(where, key))


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

    Values of another type pass: the type checks (``_check_trl_type``, TRL's own) name them.
    """
    _check_finite(values, where)
    for key, value in values.items():
        if key in ranges and isinstance(value, (int, float)) and not isinstance(value, bool):
            holds, phrase = ranges[key]
            if not holds(value):
                raise ValueError(f"{where}.{key}={value!r} must be {phrase}; fix the recipe or --set {where}.{key}=...")


def lora_config(recipe: Recipe):
    """``peft.LoraConfig(**recipe.peft)``, or None for a full fine-tune; errors name ``peft.KEY``."""
    if recipe.peft is None:
        return None
    from peft import LoraConfig

    names = [f.name for f in dataclasses.fields(LoraConfig) if f.init]
    for key in recipe.peft:
        if key not in names:
            close = did_you_mean(str(key), names)
            hint = close or f"; LoraConfig takes {', '.join(sorted(names))}"
            raise ValueError(f"unknown key peft.{key}: peft.LoraConfig does not accept it{hint}")
    check_ranges(recipe.peft, "peft", LORA_RANGES)  # PEFT takes r: 0 and fails once the model is loaded
    try:
        return LoraConfig(**recipe.peft)
    except (ValueError, TypeError) as err:
        raise ValueError(f"peft: peft.LoraConfig rejects {recipe.peft!r}: {err}") from None


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


# ---------------------------------------------------------------- resolving a run


def task_keys(recipe: Recipe) -> list[str]:
    """A key per recipe task: its name, numbered when a name repeats (arith, arith#2)."""
    keys, seen = [], {}
    for mix in recipe.tasks:
        seen[mix.name] = seen.get(mix.name, 0) + 1
        keys.append(mix.name if seen[mix.name] == 1 else f"{mix.name}#{seen[mix.name]}")
    return keys


@dataclass(frozen=True)
class EvalCurve:
    """One task's budget curve on its held-out rows; the fields are ``rlcot.evals.sweep.SweepSpec``'s, by name."""

    key: str  # the task's key in the run (task_keys): its curves go to eval/<key>
    task: str
    data: str | None
    task_args: dict
    budgets: tuple[int, ...]
    samples: int
    temperature: float
    seed: int
    limit: int  # the task's eval_size; 0: no curve
    skip: int  # the task's size: the rows trained on come first, so the held-out ones are never trained on
    max_answer_tokens: int | None  # thinking.max_answer_tokens; None: each task's own cap, as a sweep takes it
    dtype: str = "fp32"  # the policy as it trains: fp32 weights


@dataclass(frozen=True)
class ResolvedRun:
    """A recipe resolved for one device and run directory: all a run needs, built once by ``resolve_run``."""

    recipe: Recipe
    device: str
    output_dir: Path
    grpo: Any  # trl.GRPOConfig: the recipe's grpo: block over our defaults
    lora: Any  # peft.LoraConfig, or None for a full fine-tune
    budget: Budget  # the rollouts' thinking caps and answer cap
    eval_curves: tuple[EvalCurve, ...]  # one per task, in recipe order
    notes: tuple[str, ...]  # each default chosen and why

    @property
    def answer_cap(self) -> int:
        """Tokens an answer may take after thinking: ``thinking.max_answer_tokens``, else the largest task's own."""
        return self.budget.max_answer_tokens

    def record(self) -> dict:
        """What ``run.json`` keeps of it: our resolved fields, every GRPOConfig field, the notes."""
        return {"recipe": resolved(self.recipe), "grpo": self.grpo.to_dict(), "notes": list(self.notes)}


def resolve_run(recipe: Recipe, device: str | None = None, output_dir: str | Path | None = None) -> ResolvedRun:
    """``recipe`` resolved once for ``device`` (default: cuda if available) and ``output_dir`` (default: the recipe's).

    TRL validates its config here, so a bad ``grpo:`` value is a ValueError naming the
    key before any model loads. On a CPU, bf16 autocast is chosen by the matmul probe
    sweeps use (``rlcot.models.resolve_dtype``), unless the recipe sets ``grpo.bf16``.
    """
    from ..generation import Budget
    from ..models import default_device

    device = str(device or default_device())
    output_dir = Path(output_dir if output_dir is not None else recipe.output_dir)
    cap = answer_cap(recipe)
    config, notes = _grpo_config(recipe, device, str(output_dir), cap)
    thinking = recipe.thinking
    budget = Budget(max_thinking_tokens=thinking.max_thinking_tokens, min_thinking_tokens=thinking.min_thinking_tokens,
                    max_answer_tokens=cap)
    curves = tuple(EvalCurve(key=key, task=mix.name, data=mix.data, task_args=dict(mix.options),
                             budgets=tuple(recipe.eval.budgets), samples=recipe.eval.samples,
                             temperature=recipe.eval.temperature, seed=recipe.seed, limit=mix.eval_size,
                             skip=mix.size, max_answer_tokens=thinking.max_answer_tokens)
                   for key, mix in zip(task_keys(recipe), recipe.tasks))
    return ResolvedRun(recipe=recipe, device=device, output_dir=output_dir, grpo=config, lora=lora_config(recipe),
                       budget=budget, eval_curves=curves, notes=tuple(notes))


def answer_cap(recipe: Recipe) -> int:
    """``thinking.max_answer_tokens``, else the largest of the tasks' own answer caps (one budget serves them all)."""
    from rlcot.tasks import get_task

    if recipe.thinking.max_answer_tokens is not None:
        return recipe.thinking.max_answer_tokens
    return max(get_task(mix.name, data=mix.data, options=mix.options).max_answer_tokens for mix in recipe.tasks)


# ---------------------------------------------------------------- TRL's config


def _grpo_config(recipe: Recipe, device: str, output_dir: str, cap: int):
    """``(trl.GRPOConfig, notes)``: the recipe's ``grpo:`` block over our defaults, validated by TRL.

    ``notes`` are readable lines on each default we chose and why; keys the recipe sets
    are never overridden.
    """
    from trl import GRPOConfig

    names = [f.name for f in dataclasses.fields(GRPOConfig) if f.init]
    for key in recipe.grpo:
        if key not in names:
            raise ValueError(f"unknown key grpo.{key}{did_you_mean(str(key), names)}: trl.GRPOConfig has no "
                             f"field {key!r}; see its fields with python -c 'import trl; help(trl.GRPOConfig)'")
    hints = typing.get_type_hints(GRPOConfig)
    for key, value in recipe.grpo.items():
        _check_trl_type(key, value, hints.get(key))
    check_ranges(recipe.grpo, "grpo")
    ours, notes = _trl_defaults(recipe, device, cap)
    base = {**ours, "output_dir": output_dir, "seed": recipe.seed}
    try:
        return _construct(GRPOConfig, {**base, **recipe.grpo}, recipe.grpo), notes
    except (ValueError, TypeError) as err:
        culprit = _first_failing_key(GRPOConfig, base, recipe.grpo)
        where = f"grpo.{culprit}={recipe.grpo[culprit]!r}" if culprit else f"grpo {recipe.grpo!r} with {ours!r}"
        raise ValueError(f"{where}: trl.GRPOConfig rejects it: {err}") from None


def _trl_defaults(recipe: Recipe, device: str, cap: int) -> tuple[dict, list[str]]:
    chosen: dict[str, Any] = {}
    notes: list[str] = []
    if device.startswith("cpu"):
        chosen.update(_cpu_defaults(recipe, notes))
    if "max_completion_length" not in recipe.grpo:
        thinking = recipe.thinking.max_thinking_tokens
        chosen["max_completion_length"] = thinking + cap + COMPLETION_MARGIN
        notes.append(f"max_completion_length={chosen['max_completion_length']}: thinking cap {thinking} "
                     f"+ answer cap {cap} + {COMPLETION_MARGIN} for the closing tag, cue and EOS")
    if "reward_weights" not in recipe.grpo and len(recipe.rewards) > 1:  # one reward: TRL's default weight 1
        chosen["reward_weights"] = [float(reward.weight) for reward in recipe.rewards]
        notes.append(f"reward_weights={chosen['reward_weights']}: the rewards' weights, in order")
    run = {key: value for key, value in RUN_DEFAULTS.items() if key not in recipe.grpo}
    if run:
        chosen.update(run)
        notes.append(f"{', '.join(f'{k}={v}' for k, v in run.items())}: log every step locally, "
                     "checkpoint by steps so a run can resume")
    saving = {key: value for key, value in (LORA_CHECKPOINTS if recipe.peft else FULL_CHECKPOINTS).items()
              if key not in recipe.grpo}
    if saving:
        chosen.update(saving)
        why = ("a LoRA checkpoint is small: a kill loses at most the step in flight" if recipe.peft else
               "a full fine-tune's checkpoint is ~3x the model: a kill loses up to 9 steps (grpo.save_steps=1 "
               "loses at most one)")
        notes.append(f"{', '.join(f'{k}={v}' for k, v in saving.items())}: {why}")
    return chosen, notes


def _cpu_defaults(recipe: Recipe, notes: list[str]) -> dict[str, Any]:
    """``use_cpu`` and, unless the recipe sets it, ``bf16`` by the CPU dtype probe sweeps use; each noted."""
    import torch

    from ..models import resolve_dtype

    cpu = {key: value for key, value in CPU_DEFAULTS.items() if key not in recipe.grpo}
    if "bf16" not in recipe.grpo:
        choice = resolve_dtype("auto", "cpu")
        cpu["bf16"] = choice.dtype == torch.bfloat16
        how = ": TRL trains under bf16 autocast, weights kept in fp32" if cpu["bf16"] else ""
        notes.append(f"bf16={cpu['bf16']}: measured on this CPU with the probe sweeps use "
                     f"(rlcot.models.resolve_dtype), {choice.reason.removeprefix('auto: ')}{how}; "
                     "set grpo.bf16 to choose")
    if "use_cpu" in cpu:
        notes.append("use_cpu=True: training on CPU, where TRL's bf16=True default would fail without it")
    return cpu


def _check_trl_type(key: str, value: Any, hint: Any) -> None:
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


@contextlib.contextmanager
def quiet_checkpointing_warnings(quiet: bool = True):
    """transformers 5 deprecates the name ``gradient_checkpointing``, which TRL uses for its own
    default and toggles around every generation: FutureWarnings that say nothing about the run."""
    with warnings.catch_warnings():
        if quiet:
            warnings.filterwarnings("ignore", message=r".*gradient_checkpointing.*deprecated", category=FutureWarning)
        yield


def _construct(config_cls, values: dict, user: dict):
    with quiet_checkpointing_warnings("gradient_checkpointing" not in user):  # the user's own key: let it warn
        return config_cls(**values)


def _first_failing_key(config_cls, base: dict, user: dict) -> str | None:
    """The recipe key whose addition first makes TRL reject the config (TRL's messages often omit it)."""
    values = dict(base)
    try:
        _construct(config_cls, values, user)
    except (ValueError, TypeError):
        return None  # our defaults alone fail
    for key, value in user.items():
        values[key] = value
        try:
            _construct(config_cls, values, user)
        except (ValueError, TypeError):
            return key
    return None


# ---------------------------------------------------------------- showing


def resolved(recipe: Recipe) -> dict:
    """The recipe as plain JSON-able data (tuples become lists); ``_build`` reads it back."""
    return _plain(dataclasses.asdict(recipe))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def trl_non_defaults(config) -> dict:
    """GRPOConfig fields that differ from a config TRL builds from nothing but the same device.

    Comparing against a built config, not the dataclass defaults, hides what
    ``__post_init__`` derives on its own (accelerator_config, pin_memory, ...).
    """
    always = ("output_dir", "bf16", "use_cpu")
    reference = _construct(type(config), {key: getattr(config, key) for key in always}, {}).to_dict()
    current = config.to_dict()
    return {key: value for key, value in current.items()
            if key in always or (value != reference.get(key) and key != "hub_token")}


def describe(run: ResolvedRun) -> str:
    """Readable YAML for ``--dry-run``: our resolved fields, then TRL's non-default ones."""
    ours = yaml.safe_dump(resolved(run.recipe), sort_keys=False, default_flow_style=False)
    trl = yaml.safe_dump({"trl.GRPOConfig": _plain(trl_non_defaults(run.grpo))}, default_flow_style=False)
    return f"# recipe (defaults < YAML < --set)\n{ours}\n# fields differing from TRL's defaults\n{trl}"
