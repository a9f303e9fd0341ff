"""A training run's directory: what it holds, found in one place; and what any run writes beside its outputs.

``rlcot train`` writes, in order: ``run.json`` (the resolved recipe, TRL's arguments,
library versions; ``run_info``), the log ``metrics.jsonl`` and the kept rollouts
``rollouts.jsonl`` (``ROLLOUTS``, a ``rlcot.store`` file of scored traces); with
an SFT warm-up, its merged model in ``sft-warmup/model`` (``SFT_MODEL_DIR``: what GRPO
starts from and LoRA adapters name as their base); TRL's ``checkpoint-N`` directories,
each with a ``trainer_state.json`` written last; and, when training ends, the final
weights and ``trainer_state.json`` at the top level.

Every lookup of those files lives here: the trainer's resume, the demo, sweeps given a
run as a model (``saved_weights``, ``split_run_pick``; ``run_of`` and ``recorded_recipe``
for the prompts it trained on), plots that mark the learning-rate
schedule (``latest_trainer_state``) and ``check_model_dir`` all read a run through these
functions, so a change in the layout is made once. A run directory may be damaged
(killed mid-save, edited by hand): a ``trainer_state.json`` that does not read as a JSON
object counts as absent, never as an exception.
"""

from __future__ import annotations

import datetime
import json
import platform
import re
from importlib import metadata
from pathlib import Path

RUN_MARKERS = ("run.json", "metrics.jsonl")  # what `rlcot train` writes first: the resolved recipe, the log
CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")  # TRL/transformers Trainer's checkpoint directories
SFT_MODEL_DIR = "sft-warmup/model"  # the warmed-up policy GRPO starts from (and LoRA adapters build on)
TRAINER_STATE = "trainer_state.json"  # the HF Trainer's step, max_steps and log history (with the LR)
ROLLOUTS = "rollouts.jsonl"  # the kept rollouts of every step: scored traces, one rlcot.store file

TRACKED = ("rlcot", "torch", "transformers", "trl", "peft", "accelerate", "vllm", "math-verify")


def versions() -> dict[str, str | None]:
    found = {}
    for name in TRACKED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def run_info(config: dict, argv: list[str] | None = None) -> dict:
    return {
        "config": config,
        "argv": argv,
        "versions": versions(),
        "python": platform.python_version(),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


# ------------------------------------------------------------------ checkpoints and weights


def checkpoint_step(checkpoint: Path) -> int:
    """The step N of a ``checkpoint-N`` directory."""
    return int(CHECKPOINT_DIR.match(checkpoint.name).group(1))


def checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """A training run's ``checkpoint-N`` directories as ``(N, path)``, by step; other names are ignored."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), child) for child in run_dir.iterdir()
             if child.is_dir() and (m := CHECKPOINT_DIR.match(child.name))]
    return sorted(found, key=lambda item: item[0])


def trainer_state(directory: str | Path) -> dict | None:
    """``directory/trainer_state.json`` (a run's top level or one checkpoint); None where missing or unreadable."""
    try:
        state = json.loads((Path(directory) / TRAINER_STATE).read_text())
    except (OSError, ValueError):  # ValueError: not JSON, or not UTF-8
        return None
    return state if isinstance(state, dict) else None


def last_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete ``checkpoint-N``: one whose ``trainer_state.json`` (written last) reads back.

    A run killed while saving leaves a newer, partial directory; it is skipped (and
    overwritten when that step is saved again).
    """
    for _, path in reversed(checkpoints(run_dir)):
        if trainer_state(path) is not None:
            return path
    return None


def latest_trainer_state(run_dir: str | Path) -> dict | None:
    """The run's ``trainer_state.json``: at its top level (training ended), else its newest readable checkpoint's."""
    for directory in [Path(run_dir)] + [path for _, path in reversed(checkpoints(run_dir))]:
        state = trainer_state(directory)
        if state is not None:
            return state
    return None


def has_final_weights(run_dir: str | Path) -> bool:
    """Whether a directory holds a model at its top level: a whole one (config.json) or a PEFT adapter."""
    run_dir = Path(run_dir)
    return (run_dir / "config.json").is_file() or (run_dir / "adapter_config.json").is_file()


def is_saved_model(path: str | Path) -> bool:
    """A model saved in full (the SFT warm-up's): the tokenizer is written after the weights, so its files come last."""
    path = Path(path)
    return all((path / name).is_file() for name in ("config.json", "tokenizer_config.json", "tokenizer.json")) \
        and any(path.glob("*.safetensors"))


def final_step(run_dir: str | Path) -> int | None:
    """The step of a run's top-level (final) weights, which a trainer saves when training ends.

    Its ``trainer_state.json`` says; without one, the newest checkpoint's ``max_steps``
    (the step training ended at); without that, one step after the newest checkpoint
    (None when the run kept no checkpoint either).
    """
    found = checkpoints(run_dir)
    newest = found[-1] if found else None
    states = [(trainer_state(run_dir), "global_step")] + ([(trainer_state(newest[1]), "max_steps")] if newest else [])
    for state, key in states:
        try:
            return int(state[key])
        except (ValueError, KeyError, TypeError):  # TypeError: no state (None), or a value int() cannot take
            continue
    return None if newest is None else newest[0] + 1


def saved_weights(run_dir: str | Path) -> list[tuple[int | None, Path]]:
    """Every model a run saved, as ``(step, path)`` by step: each kept ``checkpoint-N``, then the final weights.

    The top-level final weights are left out where they are the newest checkpoint's
    step again (the same weights twice); their step is None where nothing tells it.
    """
    run_dir = Path(run_dir)
    found: list[tuple[int | None, Path]] = list(checkpoints(run_dir))
    if has_final_weights(run_dir):
        step = final_step(run_dir)
        if step is None or not found or step != found[-1][0]:
            found.append((step, run_dir))
    return found


def final_checkpoint(run_dir: str | Path) -> Path:
    """The ``checkpoint-N`` of a finished run's last step: its final weights, as the trainer saved them."""
    checkpoint = last_checkpoint(run_dir)
    if checkpoint is None:
        raise ValueError(f"{run_dir} holds no checkpoint-N; train it first")
    state = trainer_state(checkpoint)
    if state.get("global_step") != state.get("max_steps"):
        raise ValueError(f"{checkpoint} is step {state.get('global_step')} of {state.get('max_steps')}: the last step "
                         "was not checkpointed; set grpo.save_steps=1 so the final weights are one")
    return checkpoint


# ------------------------------------------------------------------ is it a run, and which model of it


def is_training_run(path: str | Path) -> bool:
    """Whether ``path`` is a training run's directory: its ``run.json``, ``metrics.jsonl`` or a ``checkpoint-N``."""
    path = Path(path)
    return path.is_dir() and (any((path / name).is_file() for name in RUN_MARKERS) or bool(checkpoints(path)))


def run_of(model_path: str | Path) -> Path | None:
    """The training run a model directory belongs to: the run itself, one of its ``checkpoint-N`` or its
    warm-up model (``SFT_MODEL_DIR``); None for any other path."""
    path = Path(model_path).expanduser()
    if CHECKPOINT_DIR.match(path.name):
        path = path.parent
    elif path.as_posix().endswith("/" + SFT_MODEL_DIR):
        path = path.parent.parent
    return path if is_training_run(path) else None


def recorded_recipe(run_dir: str | Path) -> dict | None:
    """The resolved recipe a run's ``run.json`` holds (``ResolvedRun.record``); None where missing or unreadable."""
    try:
        recipe = json.loads((Path(run_dir) / "run.json").read_text())["config"]["recipe"]
    except (OSError, ValueError, KeyError, TypeError):  # TypeError: a run.json that is not an object
        return None
    return recipe if isinstance(recipe, dict) else None


def run_without_weights(run_dir: str | Path, name: str | None = None) -> ValueError:
    """The error for a training run with nothing to load; ``name`` is how the user wrote it (``RUN@last``)."""
    said = f"{name}: " if name and name != str(run_dir) else ""
    return ValueError(f"{said}{run_dir} has no checkpoint-N or final weights (config.json); train it first, "
                      "or pass a model directory")


def split_run_pick(name: str) -> tuple[Path, str] | None:
    """``(run_dir, pick)`` where ``name`` is ``RUN@last`` or ``RUN@N`` of a run directory, else None.

    None where ``name`` itself exists, or RUN is no directory, or the pick is neither
    ``last`` nor a step of a run without checkpoints (``org/model@main`` stays a name).
    A ValueError where the run has no checkpoint and no final weights: nothing to pick.
    """
    run, _, pick = str(name).rpartition("@")
    run_dir = Path(run).expanduser()
    if not run or Path(name).expanduser().exists() or not run_dir.is_dir():
        return None
    found = checkpoints(run_dir)
    if not (found or pick == "last" or pick.isdigit()):
        return None
    if not found and not has_final_weights(run_dir):
        raise run_without_weights(run_dir, name)
    return run_dir, pick
