"""Choosing the dtype: spec parsing, the CPU decision as a function of measured speeds,
load_policy honouring what it is given, and training's bf16 autocast taking the same
decision. No test times anything but the probe's own: the speeds the decision sees are
passed in or stubbed, so the outcome is the same on every CPU."""

from __future__ import annotations

import math

import pytest
import torch

from rlcot import dtypes, models
from rlcot.builtin_models import tiny_llama
from rlcot.dtypes import DtypeChoice, choose_cpu_dtype, parse_dtype, resolve_dtype


@pytest.mark.parametrize(
    "spec, dtype",
    [
        ("fp32", torch.float32),
        ("float32", torch.float32),
        ("bf16", torch.bfloat16),
        ("bfloat16", torch.bfloat16),
        ("fp16", torch.float16),
        ("float16", torch.float16),
        ("BF16", torch.bfloat16),  # case does not matter
        ("torch.bfloat16", torch.bfloat16),  # str(torch.bfloat16), as a run's config records it
        (torch.float16, torch.float16),  # a dtype passes through
        ("auto", None),
    ],
)
def test_dtype_specs_parse(spec, dtype):
    assert parse_dtype(spec) == dtype


@pytest.mark.parametrize("spec", ["fp7", "int8", "", "float"])
def test_a_bad_dtype_spec_names_the_value_and_the_choices(spec):
    with pytest.raises(ValueError, match=rf"unknown dtype '{spec}'; choose auto, float32, fp32, bfloat16, bf16"):
        parse_dtype(spec)


@pytest.mark.parametrize(
    "fp32, bf16, chosen",
    [
        (47.0, 1.0, torch.float32),  # AMD EPYC without bf16 units: emulated, ~50x slower
        (346.0, 2280.0, torch.bfloat16),  # Intel Xeon with AMX: ~6.6x faster
        (100.0, 149.0, torch.float32),  # faster, but not clearly
        (100.0, 150.0, torch.bfloat16),  # exactly the threshold
        (100.0, 100.0, torch.float32),
    ],
)
def test_cpu_picks_bf16_only_where_it_is_clearly_faster(fp32, bf16, chosen):
    choice = choose_cpu_dtype(fp32, bf16)
    assert choice.dtype == chosen
    # the reason carries both measured speeds, for the run's record
    assert f"fp32 {fp32:.1f} GFLOP/s" in choice.reason and f"bf16 {bf16:.1f} GFLOP/s" in choice.reason


def test_the_threshold_is_a_parameter():
    assert choose_cpu_dtype(100.0, 120.0, min_speedup=1.1).dtype == torch.bfloat16
    assert choose_cpu_dtype(100.0, 120.0, min_speedup=1.3).dtype == torch.float32


def _stub_probe(monkeypatch, speeds: dict) -> list:
    """Make the matmul probe report ``speeds[dtype]``; returns the dtypes it was asked for."""
    asked = []

    def fake(dtype, **_):
        asked.append(dtype)
        return speeds[dtype]

    monkeypatch.setattr(dtypes, "matmul_gflops", fake)
    return asked


@pytest.mark.parametrize(
    "speeds, chosen",
    [({torch.float32: 50.0, torch.bfloat16: 1.0}, torch.float32),
     ({torch.float32: 300.0, torch.bfloat16: 2000.0}, torch.bfloat16)],
)
def test_auto_on_cpu_follows_the_probe(monkeypatch, speeds, chosen):
    asked = _stub_probe(monkeypatch, speeds)
    choice = resolve_dtype("auto", "cpu")
    assert choice.dtype == chosen and sorted(map(str, asked)) == ["torch.bfloat16", "torch.float32"]
    assert choice.reason.startswith("auto:")


@pytest.mark.parametrize("device", ["cuda", "cuda:1", torch.device("cuda", 0)])
def test_auto_on_cuda_is_bf16_without_probing(monkeypatch, device):
    asked = _stub_probe(monkeypatch, {})
    assert resolve_dtype("auto", device).dtype == torch.bfloat16 and asked == []


def test_an_explicit_dtype_is_taken_as_given_without_probing(monkeypatch):
    asked = _stub_probe(monkeypatch, {})
    choice = resolve_dtype("bf16", "cpu")
    assert choice == DtypeChoice(torch.bfloat16, "asked for bf16") and asked == []
    assert resolve_dtype(choice, "cuda") is choice  # an earlier choice passes through


@pytest.mark.parametrize(
    "speeds, bf16",
    [({torch.float32: 50.0, torch.bfloat16: 1.0}, False),
     ({torch.float32: 300.0, torch.bfloat16: 2000.0}, True)],
)
def test_training_on_cpu_takes_bf16_autocast_by_the_same_probe_once(monkeypatch, speeds, bf16):
    from rlcot.train.recipe import load_recipe
    from rlcot.train.resolve import resolve_run

    asked = _stub_probe(monkeypatch, speeds)
    run = resolve_run(load_recipe(None), "cpu")
    assert run.grpo.bf16 is bf16 and sorted(map(str, asked)) == ["torch.bfloat16", "torch.float32"]
    assert choose_cpu_dtype(speeds[torch.float32], speeds[torch.bfloat16]).reason.removeprefix("auto: ") in \
        "\n".join(run.notes)  # the run records the same measured reason a sweep does


def test_the_probe_measures_a_positive_speed():
    speed = dtypes.matmul_gflops(torch.float32, size=64, repeats=2)
    assert math.isfinite(speed) and speed > 0


@pytest.fixture
def tiny_dir(tmp_path, tokenizer):
    tiny_llama(vocab_size=len(tokenizer)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "spec, dtype",
    [("bf16", torch.bfloat16), ("fp32", torch.float32), (torch.float16, torch.float16),
     (DtypeChoice(torch.bfloat16, "recorded earlier"), torch.bfloat16)],
)
def test_load_policy_honours_an_explicit_dtype(tiny_dir, spec, dtype):
    model, _ = models.load_policy(str(tiny_dir), device="cpu", dtype=spec)
    assert {p.dtype for p in model.parameters()} == {dtype}


def test_load_policy_auto_loads_in_the_probed_dtype(monkeypatch, tiny_dir):
    _stub_probe(monkeypatch, {torch.float32: 300.0, torch.bfloat16: 2000.0})
    model, _ = models.load_policy(str(tiny_dir), device="cpu")
    assert next(model.parameters()).dtype == torch.bfloat16


def test_load_policy_refuses_a_bad_dtype_before_loading(monkeypatch):
    # an unloadable name: the dtype error must come first, so it is the one reported
    with pytest.raises(ValueError, match="unknown dtype 'fp7'"):
        models.load_policy("nobody/no-such-model-xyz", device="cpu", dtype="fp7")
