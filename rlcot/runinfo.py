"""What a run writes next to its outputs: the resolved config and the library versions."""

from __future__ import annotations

import datetime
import platform
from importlib import metadata

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
