"""What a run writes next to its outputs (the resolved config and the library versions), and its checkpoints."""

from __future__ import annotations

import datetime
import platform
import re
from importlib import metadata
from pathlib import Path

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
