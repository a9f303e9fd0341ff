"""Programmatic verifiers: turn a completion into a Verdict (pure Python, no torch).

``get_verifier(name)`` takes a registered name (``math``, ``sudoku``, ``crossword``),
a plugin installed under the entry-point group ``rlcot.verifiers``, or
``module.path:attr`` (a module importable or in the working directory) or
``path/to/file.py:attr`` naming a user's own verifier: a ``Verifier`` subclass or
instance, or a plain function ``f(answer_section, example) -> Verdict | bool | None``
(None: no answer found). Any other object with a ``verify(completion, example)``
method is wrapped in ``DuckTypedVerifier``, so every verifier this returns also has
``verify_answer`` and ``verify_answer_batch`` (``rlcot.verifiers.base``).

The package is the ground floor of the project: it imports nothing from ``rlcot``.
``sections`` reads completions (thinking split, boxes), ``base`` holds the shared
rules, ``hedging`` the lexicon and the score scheme, ``workers`` the bounded worker
pool math runs in, and one module per domain (``math``, ``sudoku``, ``crossword``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from importlib import metadata
from pathlib import Path

from .base import DuckTypedVerifier, FunctionVerifier, Verdict, Verifier
from .hedging import BINARY, HedgeLexicon, HedgeScheme
from .sections import answer_section, boxed_contents, last_boxed, split_completion

ENTRY_POINT_GROUP = "rlcot.verifiers"

# name -> "module:attr"; imported on first use, so `import rlcot.verifiers` stays light.
REGISTRY: dict[str, str] = {
    "math": "rlcot.verifiers.math:MathVerifier",
    "sudoku": "rlcot.verifiers.sudoku:SudokuVerifier",
    "crossword": "rlcot.verifiers.crossword:CrosswordVerifier",
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
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr:
        raise ValueError(f"verifier {name!r} names no {'module' if not module_name else 'attribute'}; "
                         "write module.path:attr or path/to/file.py:attr")
    if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
        module, where = _load_file(module_name, name), f"file {module_name!r}"
    else:
        module, where = _import(module_name, name), f"module {module_name!r}"
    if not hasattr(module, attr):
        found = sorted(key for key, value in vars(module).items() if not key.startswith("_") and callable(value)
                       and getattr(value, "__module__", None) == module.__name__)
        offer = f"it defines {', '.join(found[:10])}" if found else "it defines no function or class"
        raise ValueError(f"verifier {name!r}: {where} has no attribute {attr!r}; {offer}")
    return getattr(module, attr)


def _import(module_name: str, name: str):
    """Import ``module_name``; like uvicorn and gunicorn, a module not found is looked for in the working directory.

    The working directory is not on ``sys.path`` for an installed console script
    (``rlcot``), so ``mycheck.py`` beside the user would otherwise be invisible. Any
    failure, the module's own code raising included, is one ValueError line: the
    user's module is input, and a traceback through importlib says less than its name.
    """
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        cwd = os.getcwd()
        if err.name is not None and not _is_prefix(err.name, module_name):  # the module's own import failed
            raise ValueError(f"verifier {name!r}: module {module_name!r} imports {err.name!r}, which is not "
                             f"installed; install it, or drop that import") from None
        if err.name != module_name.split(".")[0] or cwd in sys.path or "" in sys.path:
            raise ValueError(f"verifier {name!r}: cannot import module {module_name!r} ({err}); check the path, "
                             f"or pass a file: ./{module_name.replace('.', '/')}.py:ATTR") from None
        sys.path.insert(0, cwd)
        return _import(module_name, name)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - the module's own code raised (SyntaxError, sys.exit)
        raise ValueError(f"verifier {name!r}: importing module {module_name!r} raised "
                         f"{type(err).__name__}: {err}; fix the module (`python -c 'import {module_name}'` "
                         "shows the traceback)") from None


def _is_prefix(missing: str, module_name: str) -> bool:
    """Whether the module not found is ``module_name`` or a package on its way (``a`` or ``a.b`` of ``a.b.c``)."""
    return module_name == missing or module_name.startswith(missing + ".")


def _load_file(file: str, name: str):
    """A verifier module given as a file path (``./mycheck.py:exact``), loaded once per resolved path."""
    path = Path(file)
    if not path.is_file():
        raise ValueError(f"verifier {name!r}: file {file!r} does not exist; check the path (relative to "
                         f"{os.getcwd()})")
    resolved = path.resolve()
    module_name = f"rlcot_verifier_file_{hashlib.blake2b(str(resolved).encode(), digest_size=6).hexdigest()}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None:
        raise ValueError(f"verifier {name!r}: {file} is not a Python file; give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # before running it, so dataclasses and pickling can find it
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - a script's sys.exit() must not end rlcot either
        del sys.modules[module_name]
        raise ValueError(f"verifier {name!r}: {file} failed to load ({type(err).__name__}: {err}); fix the file "
                         f"(`python {file}` shows the traceback)") from None
    return module


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
