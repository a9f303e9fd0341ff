"""What every ``rlcot`` command shares: the typer ``app``, its help, the two consoles and the error path.

Here and not in a command module because each of those registers its commands on this
``app`` and reports through the same ``_fail`` (one line, exit 2), the same ``console``
(stdout) and ``errors`` (stderr), the same ``KEY=VALUE`` parser and the same run-info
file beside an output. The typer metavar patches live here too: they must run before
any help is printed, and every import of the command line passes through this module.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..files import atomic_write_text

HELP = ("rlcot: reinforcement learning on chains of thought, and the compute a model spends thinking.\n\n"
        "Generate budget-forced reasoning traces, score them with verifiers, sweep thinking budgets "
        "and plot accuracy against thinking tokens, and train a policy with GRPO from a recipe.")
app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)


def _click_style_metavar(param, ctx) -> str | None:
    """TEXT, INT, FLOAT, PATH, a|b (choices), with "..." when repeatable; nothing for a flag.

    typer 0.29 shows its annotation types instead (``<bool>`` beside every flag,
    ``<list[str]>``), which read like internals; click's metavars read like a tool's.
    """
    if param.metavar is not None:
        return param.metavar
    if getattr(param, "is_flag", False):
        return None
    shown = str(param.display_type(ctx) or "").strip("<>")
    repeatable = shown.startswith("list[") or param.nargs != 1
    if shown.startswith("list[") and shown.endswith("]"):
        shown = shown[len("list["):-1]
    shown = {"str": "TEXT", "int": "INT", "float": "FLOAT", "path": "PATH", "bool": "BOOL"}.get(shown, shown)
    return shown + ("..." if repeatable else "")


def _usage_name(argument) -> str:
    """RECIPE and [RUN_DIR] in the usage line, as click writes them (typer 0.29: {recipe})."""
    name = argument.display_name_raw.upper()
    return (name if argument.required else f"[{name}]") + ("..." if argument.nargs != 1 else "")


typer.core.TyperOption.display_type_rich = _click_style_metavar
typer.core.TyperArgument.display_type_rich = _click_style_metavar
typer.core.TyperArgument._usage_display_name = _usage_name
console = Console()
errors = Console(stderr=True, soft_wrap=True)  # one error, one line: never wrapped


def _fail(message: str) -> None:
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(2)


def command(**options):
    """``app.command``, with the one place where a user's mistake becomes a line instead of a traceback.

    ``ValueError`` (our checks; ``UnicodeDecodeError`` too) and ``OSError`` (a read-only
    mount, a full disk, a file where a directory belongs: ``rlcot.files.os_error_line``)
    print one line and exit 2. A closed pipe (``rlcot score ... | head``) exits quietly.
    Library warnings that say nothing to a user (``rlcot.quiet.NOISE``) are filtered here, for every command.
    """

    def register(function):
        @functools.wraps(function)
        def guarded(*args, **kwargs):
            from ..quiet import filter_noise

            filter_noise()
            try:
                return function(*args, **kwargs)
            except BrokenPipeError:
                raise typer.Exit(141) from None
            except OSError as err:
                from ..files import os_error_line

                _fail(os_error_line(err))
            except ValueError as err:
                _fail(str(err))

        return app.command(**options)(guarded)

    return register


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=errors,
        transient=False,
    )


def _task_options(pairs: list[str], flag: str = "--task-arg", example: str = "unanswerable=0.2") -> dict:
    """``["size=9", "difficulty=hard"]`` -> ``{"size": 9, "difficulty": "hard"}`` (JSON values, else strings)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} {pair!r} is not KEY=VALUE; e.g. {flag} {example}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _run_info_path(out: Path) -> Path:
    return out.with_name(out.name + ".run.json")


def _read_run_config(path: Path) -> dict:
    """The config recorded next to ``path`` by the command that wrote it (empty if none)."""
    info = _run_info_path(path)
    if not info.is_file():
        return {}
    try:
        config = json.loads(info.read_text()).get("config", {})
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise ValueError(f"{info} is not a run-info JSON object; delete it or pass --task") from None
    return config if isinstance(config, dict) else {}


def _write_run_info(out: Path, config: dict, **extra) -> None:
    from ..runinfo import run_info

    info = {**run_info(config, argv=sys.argv), **{k: v for k, v in extra.items() if v is not None}}
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(_run_info_path(out), json.dumps(info, indent=2) + "\n")
