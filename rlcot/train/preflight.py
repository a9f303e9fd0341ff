"""What ``rlcot train`` can find wrong before a model loads or a file of the run is written.

A training run spends a minute or more loading a model and building its data before
TRL reads a single argument, and a resume used to overwrite ``run.json`` before it
found out that the checkpoint it resumes cannot be read. ``preflight`` runs first,
for the real run and for ``--dry-run`` alike, reads only, and raises ``ValueError``
with one sentence naming the value and the fix for:

- an output directory that is a file, or lies under one (``rlcot.files.check_output``);
- a model given as a path that does not exist or holds no loadable model
  (``rlcot.models.local_model_dir``, ``check_model_dir``), and an ``owner/name`` whose
  ``owner`` is a directory here but ``name`` is not in it (a mistyped path, not a hub id);
- a LoRA ``target_modules`` entry that matches no module of the model, matched as
  PEFT matches it (``peft.tuners.tuners_utils.check_target_module_exists``: the name or
  a ``.``-suffix of it; a single string is a regex, ``all-linear`` a shorthand). The
  module names come from the model built on the meta device from its config, so no
  weights are read. A model with no config here (a hub id not downloaded, the
  built-in one before its first conversion) is not checked: converting or
  downloading it just to check would cost more than the load that follows;
- a task row the run would train or evaluate on that cannot be prompted or scored
  (``rlcot.row_checks.check_rows``: a missing or unreadable gold, a duplicate id);
- ``--resume``: no checkpoint to resume, the SFT warm-up model its checkpoints build
  on missing, a ``metrics.jsonl``/``rollouts.jsonl`` damaged before its last line
  (``rlcot.train.callbacks.check_run_logs``; a torn last line is cut when training starts).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

from ..builtin_models import BUILTIN_MODELS, cached_path, is_cached
from ..models import check_model_dir, local_model_dir
from ..files import check_output
from ..runinfo import SFT_MODEL_DIR, checkpoint_step, is_saved_model, last_checkpoint
from .callbacks import check_run_logs


@dataclass(frozen=True)
class ResumePoint:
    """Where a resume starts: a checkpoint, or (None) GRPO afresh on a finished SFT warm-up."""

    checkpoint: Path | None
    policy: str  # what to load: the recipe's model, or the warmed-up model GRPO's checkpoints build on

    @property
    def step(self) -> int:
        """Optimizer steps done: log lines after it are redone."""
        return checkpoint_step(self.checkpoint) if self.checkpoint is not None else 0


def preflight(recipe, output_dir: str | Path | None = None, resume: bool = False) -> ResumePoint | None:
    """Raise ValueError on anything that would fail ``rlcot train`` after its model loads; reads, never writes.

    ``output_dir`` is ``--out`` (None: the recipe's ``output_dir``). Returns where a
    resume starts (None without ``resume``).
    """
    flag = "--out" if output_dir is not None else "output_dir"
    output_dir = Path(output_dir if output_dir is not None else recipe.output_dir)
    check_output(output_dir, "dir", flag=flag)
    check_task_rows(recipe)
    config_dir = model_config_dir(recipe.model)
    if recipe.peft is not None and config_dir is not None:
        check_lora_targets(recipe, config_dir)
    return resume_point(recipe, output_dir) if resume else None


def check_task_rows(recipe) -> None:
    """Every row the run trains and evaluates on can be prompted and scored (``rlcot.row_checks.check_rows``)."""
    from ..row_checks import check_rows
    from ..tasks import get_task

    for mix in recipe.tasks:
        task = get_task(mix.name, data=mix.data, **dict(mix.options))
        check_rows(task, task.rows(mix.size + mix.eval_size, seed=recipe.seed))


def model_config_dir(model: str) -> Path | str | None:
    """Where the model's ``config.json`` can be read here (None: nowhere yet); a missing or broken path is an error."""
    if model in BUILTIN_MODELS:
        return cached_path(model) if is_cached(model) else None
    path = local_model_dir(model)  # a file, or a path no hub id can be (./x, /x, ~/x, a/b/c) that is not there
    if path is not None:
        check_model_dir(path)
        return path
    owner = model.split("/")[0]
    if "/" in model and Path(owner).expanduser().is_dir():  # runs/x where runs/ is here: a mistyped path
        raise ValueError(f"model {model!r}: no such directory ({Path(model).absolute()}), though {owner}/ is "
                         f"here; check the path, or pass a built-in name ({', '.join(BUILTIN_MODELS)}) or a hub id")
    return model  # a hub id: its config is read from the local HF cache, if it is there


def check_lora_targets(recipe, config_source: Path | str) -> None:
    """Each ``peft.target_modules`` entry must name a module of the model, as PEFT would match it."""
    from peft.tuners.tuners_utils import check_target_module_exists

    from .recipe import did_you_mean
    from .resolve import lora_config

    config = lora_config(recipe)
    targets = config.target_modules
    if targets is None or (isinstance(targets, str) and targets.lower() == "all-linear"):
        return  # None: PEFT's defaults for the model type
    names = module_names(config_source)
    if names is None:
        return
    for entry in [targets] if isinstance(targets, str) else sorted(targets):
        single = copy.copy(config)
        single.target_modules = entry if isinstance(targets, str) else {entry}
        try:
            found = any(check_target_module_exists(single, name) for name in names)
        except re.error as err:  # a single string is a regex
            raise ValueError(f"peft.target_modules {entry!r} is not a valid pattern ({err}); give module names "
                             "such as [q_proj, v_proj]") from None
        if not found:
            linear = sorted({name.rsplit(".", 1)[-1] for name, kind in names.items() if kind == "Linear"})
            where = " in the layers of layers_to_transform" if config.layers_to_transform is not None else ""
            raise ValueError(f"peft.target_modules {entry!r} matches no module of model {recipe.model!r}{where}"
                             f"{did_you_mean(entry, linear)}; its linear layers are {', '.join(linear)} "
                             "(or use all-linear)")


def module_names(config_source: Path | str) -> dict[str, str] | None:
    """``{module name: class name}`` of the model built on the meta device (no weights); None if no config is here."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(str(config_source), local_files_only=True)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except (OSError, ValueError, KeyError):  # not cached here, or not a causal LM transformers knows: the load says
        return None
    return {name: type(module).__name__ for name, module in model.named_modules() if name}


def resume_point(recipe, output_dir: Path) -> ResumePoint:
    """Where ``--resume`` starts, after every check that could fail it once the model is loaded."""
    sft_dir = output_dir / SFT_MODEL_DIR
    warmed = recipe.sft_warmup is not None and is_saved_model(sft_dir)
    start = last_checkpoint(output_dir)
    if start is None and not warmed:
        raise ValueError(f"--resume: {output_dir} holds no checkpoint-N to resume (nor a finished SFT warm-up); "
                         "drop --resume to start afresh")
    if recipe.sft_warmup is not None and not warmed:
        raise ValueError(f"--resume: {sft_dir} is missing, the SFT warm-up's model this run's checkpoints "
                         "build on; drop --resume to start afresh")
    if start is not None:  # from step 0 (GRPO afresh on the warm-up) no log line is kept, so none is read
        check_run_logs(output_dir)
    return ResumePoint(start, str(sft_dir) if recipe.sft_warmup is not None else recipe.model)
