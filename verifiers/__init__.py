"""Programmatic verifiers: turn a completion into a Verdict (pure Python, no torch).

``get_verifier(name)`` takes a registered name (``math``, ``sudoku``, ``crossword``),
a plugin installed under the entry-point group ``rlcot.verifiers``, or
``module.path:attr`` naming a user's own verifier: a ``Verifier`` subclass or
instance, or a plain function ``f(answer_section, example) -> Verdict | bool | None``
(None: no answer found). Any other object with a ``verify(completion, example)``
method is wrapped in ``DuckTypedVerifier``, so every verifier this returns also has
``verify_answer`` and ``verify_answer_batch`` (``verifiers.base``).

The package is the ground floor of the project: it imports nothing from ``rlcot``.
``sections`` reads completions (thinking split, boxes), ``base`` holds the shared
rules, ``hedging`` the lexicon and the score scheme, ``workers`` the bounded worker
pool math runs in, and one module per domain (``math``, ``sudoku``, ``crossword``).
"""

from __future__ import annotations

import importlib
import inspect
from importlib import metadata

from .base import DuckTypedVerifier, FunctionVerifier, Verdict, Verifier
from .hedging import BINARY, HedgeLexicon, HedgeScheme
from .sections import answer_section, boxed_contents, last_boxed, split_completion

ENTRY_POINT_GROUP = "rlcot.verifiers"

# name -> "module:attr"; imported on first use, so `import verifiers` stays light.
REGISTRY: dict[str, str] = {
    "math": "verifiers.math:MathVerifier",
    "sudoku": "verifiers.sudoku:SudokuVerifier",
    "crossword": "verifiers.crossword:CrosswordVerifier",
}


def get_verifier(name: str, **options) -> Verifier:
    """A verifier by registered name, entry-point plugin, or ``module.path:attr``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"verifier name {name!r} is empty; give a name ({', '.join(available())}) or module:attr")
    if name in REGISTRY:
        target = _load(REGISTRY[name], name)
    elif ":" in name:
        target = _load(name, name)
    else:
        plugins = {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
        if name not in plugins:
            raise ValueError(
                f"unknown verifier {name!r}; choose one of {', '.join(available())} or pass module.path:attr"
            )
        target = plugins[name].load()
    return _instantiate(target, name, options)


def available() -> list[str]:
    plugins = [ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)]
    return list(REGISTRY) + sorted(set(plugins) - set(REGISTRY))


def _load(spec: str, name: str):
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"verifier {name!r}: cannot import module {module_name!r} ({err}); check the path") from None
    if not hasattr(module, attr):
        raise ValueError(f"verifier {name!r}: module {module_name!r} has no attribute {attr!r}")
    return getattr(module, attr)


def _instantiate(target, name: str, options: dict) -> Verifier:
    if isinstance(target, Verifier):
        return target
    if inspect.isclass(target) and hasattr(target, "verify"):
        return _as_verifier(target(**options), name)
    if not inspect.isclass(target) and hasattr(target, "verify"):  # a duck-typed verifier object
        return _as_verifier(target, name)
    if callable(target) and not inspect.isclass(target):
        return FunctionVerifier(target, name=name)
    raise TypeError(f"verifier {name!r} is a {type(target).__name__}; give a Verifier, a class or a function")


def _as_verifier(instance, name: str) -> Verifier:
    return instance if isinstance(instance, Verifier) else DuckTypedVerifier(instance, name=name)


__all__ = [
    "BINARY", "ENTRY_POINT_GROUP", "DuckTypedVerifier", "FunctionVerifier", "HedgeLexicon", "HedgeScheme",
    "REGISTRY", "Verdict", "Verifier", "answer_section", "available", "boxed_contents", "get_verifier",
    "last_boxed", "split_completion",
]
