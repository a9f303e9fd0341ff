"""A checked recipe resolved once into everything a run needs (``ResolvedRun``).

``resolve_run`` builds TRL's config, the LoRA config, the rollouts' thinking budget and
answer cap, the held-out eval curves, and the notes on each default chosen. The CLI,
the trainer, the demo and the benchmark all take that one object; none of them builds
a ``GRPOConfig`` or works out the answer cap again.

The recipe's ``grpo:`` block goes verbatim to ``trl.GRPOConfig`` so TRL validates it
itself; we only add defaults that a small CPU run needs (and checkpointing, logging)
and say which, never overriding a key the recipe sets. When TRL rejects the config,
the recipe key that makes it fail is found and named (TRL's messages often omit it).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .checks import LORA_RANGES, check_ranges, check_trl_type
from .recipe import Recipe, did_you_mean, plain, resolved, task_keys

if TYPE_CHECKING:
    from ..generation import Budget
    from ..thinking import ThinkingProtocol

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
class EvalCurve:
    """One task's budget curve on its held-out rows; the fields are ``rlcot.evals.sweep_spec.SweepSpec``'s, by name."""

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
    kind: str = "greedy"  # greedy (eval.temperature, eval.samples), or sampled: mean@k at the training temperature
    system_prompt: str | None = None  # thinking.system_prompt: the curves ask as training does
    chat_template_kwargs: dict | None = None  # thinking.chat_template_kwargs: so do its template options


SAMPLED_SUFFIX = "-sampled"  # eval/<task>-sampled: the mean@k curve beside eval/<task>
WARM_UP_LABEL = "after SFT warm-up"  # the eval curve of what GRPO starts from: RL's own gain is measured from it


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
    def protocol(self) -> ThinkingProtocol:
        """How every prompt of the run is built: rollouts, the SFT warm-up, the eval curves."""
        return self.recipe.thinking.protocol()

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
    sweeps use (``rlcot.dtypes.resolve_dtype``), unless the recipe sets ``grpo.bf16``.
    """
    from ..generation import Budget
    from ..dtypes import default_device

    device = str(device or default_device())
    output_dir = Path(output_dir if output_dir is not None else recipe.output_dir)
    cap = answer_cap(recipe)
    config, notes = _grpo_config(recipe, device, str(output_dir), cap)
    thinking = recipe.thinking
    budget = Budget(max_thinking_tokens=max(thinking.caps), min_thinking_tokens=thinking.min_thinking_tokens,
                    max_answer_tokens=cap)
    curves = []
    for key, mix in zip(task_keys(recipe), recipe.tasks):
        curve = EvalCurve(key=key, task=mix.name, data=mix.data, task_args=dict(mix.options),
                          budgets=tuple(recipe.eval.budgets), samples=recipe.eval.samples,
                          temperature=recipe.eval.temperature, seed=recipe.seed, limit=mix.eval_size,
                          skip=mix.size, max_answer_tokens=thinking.max_answer_tokens,
                          system_prompt=thinking.system_prompt,
                          chat_template_kwargs=dict(thinking.chat_template_kwargs))
        if recipe.eval.sampled:  # mean@k at the temperature the rollouts are drawn at: what GRPO optimizes
            curves.append(dataclasses.replace(curve, key=f"{key}{SAMPLED_SUFFIX}", samples=recipe.eval.sampled,
                                              temperature=config.temperature, kind="sampled"))
        curves.append(curve)
    return ResolvedRun(recipe=recipe, device=device, output_dir=output_dir, grpo=config, lora=lora_config(recipe),
                       budget=budget, eval_curves=tuple(curves), notes=tuple(notes))


def answer_cap(recipe: Recipe) -> int:
    """``thinking.max_answer_tokens``, else the largest of the tasks' own answer caps (one budget serves them all)."""
    from rlcot.tasks import get_task

    if recipe.thinking.max_answer_tokens is not None:
        return recipe.thinking.max_answer_tokens
    return max(get_task(mix.name, data=mix.data, options=mix.options).max_answer_tokens for mix in recipe.tasks)


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
        check_trl_type(key, value, hints.get(key))
    check_ranges(recipe.grpo, "grpo")
    ours, notes = _trl_defaults(recipe, device, cap)
    ours.update(_tracker_defaults(recipe, output_dir, notes))
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
        thinking = max(recipe.thinking.caps)
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


TRACKIO_PROJECT = "rlcot"  # transformers' default project is "huggingface"


def _tracker_defaults(recipe: Recipe, output_dir: str, notes: list[str]) -> dict[str, Any]:
    """Where ``grpo.report_to``'s tensorboard and trackio keep the run's logs, each noted; the recipe's keys win.

    tensorboard: ``RUN/tensorboard`` (``rlcot.train.trainer.build_trainer`` points its callback
    there). trackio: its own local store (``TRACKIO_DIR``, default under ``HF_HOME``), which
    trackio reads once on import, so one dashboard (``trackio show``) compares every run;
    project ``rlcot``, the run named by its directory so a resumed run goes on logging
    under its name. Nothing goes to a Space unless ``grpo.trackio_space_id`` (or
    ``TRACKIO_SPACE_ID``) names one.
    """
    import importlib.util

    from .callbacks import TENSORBOARD_DIR

    report = recipe.grpo.get("report_to", "none")
    report = {report} if isinstance(report, str) else set(report or ())
    for tracker in report & {"tensorboard", "trackio"}:
        if importlib.util.find_spec(tracker) is None:
            raise ValueError(f"grpo.report_to={tracker} needs the {tracker} package, which is not installed: "
                             "pip install 'rlcot[logging]' (make does)")
    if "all" in report:  # TRL reports to every integration installed
        report |= {tracker for tracker in ("tensorboard", "trackio") if importlib.util.find_spec(tracker)}
    chosen: dict[str, Any] = {}
    if "tensorboard" in report:
        notes.append(f"report_to tensorboard: event files in {Path(output_dir) / TENSORBOARD_DIR}; "
                     f"tensorboard --logdir {output_dir}")
    if "trackio" in report:
        import trackio.utils

        run_name = str(Path(output_dir).resolve())
        chosen = {key: value for key, value in (("project", TRACKIO_PROJECT), ("run_name", run_name))
                  if key not in recipe.grpo}
        project = recipe.grpo.get("project", TRACKIO_PROJECT)
        notes.append(f"report_to trackio: project {project}, run {recipe.grpo.get('run_name', run_name)}, stored "
                     f"locally in {trackio.utils.TRACKIO_DIR}; trackio show --project {project}")
    return chosen


def _cpu_defaults(recipe: Recipe, notes: list[str]) -> dict[str, Any]:
    """``use_cpu`` and, unless the recipe sets it, ``bf16`` by the CPU dtype probe sweeps use; each noted."""
    import torch

    from ..dtypes import resolve_dtype

    cpu = {key: value for key, value in CPU_DEFAULTS.items() if key not in recipe.grpo}
    if "bf16" not in recipe.grpo:
        choice = resolve_dtype("auto", "cpu")
        cpu["bf16"] = choice.dtype == torch.bfloat16
        how = ": TRL trains under bf16 autocast, weights kept in fp32" if cpu["bf16"] else ""
        notes.append(f"bf16={cpu['bf16']}: measured on this CPU with the probe sweeps use "
                     f"(rlcot.dtypes.resolve_dtype), {choice.reason.removeprefix('auto: ')}{how}; "
                     "set grpo.bf16 to choose")
    if "use_cpu" in cpu:
        notes.append("use_cpu=True: training on CPU, where TRL's bf16=True default would fail without it")
    return cpu


def _construct(config_cls, values: dict, user: dict):
    from ..quiet import checkpointing_alias_warnings

    with checkpointing_alias_warnings("gradient_checkpointing" not in user):  # the user's own key: let it warn
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
    trl = yaml.safe_dump({"trl.GRPOConfig": plain(trl_non_defaults(run.grpo))}, default_flow_style=False)
    return f"# recipe (defaults < YAML < --set)\n{ours}\n# fields differing from TRL's defaults\n{trl}"
