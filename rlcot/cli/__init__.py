"""The ``rlcot`` command line: generate, score, sweep, plot, report, train, demo, models (typer, rich output).

One module per family of commands, all registering on the one typer ``app`` of ``common``:

- ``common``: the ``app``, its help, the consoles, ``_fail`` and the ``command`` decorator, run-info files
- ``traces``: ``generate`` and its resume engine
- ``scoring``: ``score``, of a file of completions or of a sweep directory
- ``sweeps``: ``sweep``, ``plot``, ``report``
- ``training``: ``train``, ``demo``, ``models``

``rlcot.cli:app`` is the console script (pyproject); ``python -m rlcot.cli`` and
``python -m rlcot`` run it too.
"""

from __future__ import annotations

from . import scoring, sweeps, traces, training  # noqa: F401  (importing them registers their commands)
from .common import app

# `rlcot --help` lists the commands in the order they were registered, which is now the
# order of the imports above; put them back in the order a user meets them (a command
# not named here goes last)
_ORDER = ("models", "generate", "demo", "score", "sweep", "plot", "report", "train")
app.registered_commands.sort(
    key=lambda info: _ORDER.index(info.callback.__name__) if info.callback.__name__ in _ORDER else len(_ORDER))

__all__ = ["app"]
