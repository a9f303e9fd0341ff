"""What a run writes next to its outputs (the resolved config and the library versions), and its checkpoints.

A training run's directory (``rlcot train``) holds ``run.json`` from its start,
``checkpoint-N`` directories as it saves, and its final weights at the top level
when it ends. A sweep given the run as a model reads it through ``checkpoints`` and
``has_final_weights``; a run with neither has nothing to load (``run_without_weights``).
"""

from __future__ import annotations

import datetime
import platform
import re
from importlib import metadata
from pathlib import Path

RUN_MARKERS = ("run.json", "metrics.jsonl")  # what `rlcot train` writes first: the resolved recipe, the log
CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")  # TRL/transformers Trainer's checkpoint directories

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


def checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """A training run's ``checkpoint-N`` directories as ``(N, path)``, by step; other names are ignored."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), child) for child in run_dir.iterdir()
             if child.is_dir() and (m := CHECKPOINT_DIR.match(child.name))]
    return sorted(found, key=lambda item: item[0])


def has_final_weights(run_dir: str | Path) -> bool:
    """Whether a directory holds a model at its top level: a whole one (config.json) or a PEFT adapter."""
    run_dir = Path(run_dir)
    return (run_dir / "config.json").is_file() or (run_dir / "adapter_config.json").is_file()


def is_training_run(path: str | Path) -> bool:
    """Whether ``path`` is a training run's directory: its ``run.json``, ``metrics.jsonl`` or a ``checkpoint-N``."""
    path = Path(path)
    return path.is_dir() and (any((path / name).is_file() for name in RUN_MARKERS) or bool(checkpoints(path)))


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
