"""Fixtures for training tests (the tiny model saved as a directory, ``tiny_dir``, is in tests/conftest.py)."""

from __future__ import annotations

import pytest
import torch


def pin_matmul_speeds(monkeypatch, fp32: float, bf16: float) -> list:
    """Make the CPU dtype probe (``rlcot.dtypes.matmul_gflops``) report these GFLOP/s; returns the dtypes asked."""
    asked = []

    def probe(dtype, **_):
        asked.append(dtype)
        return {torch.float32: fp32, torch.bfloat16: bf16}[dtype]

    monkeypatch.setattr("rlcot.dtypes.matmul_gflops", probe)
    return asked


@pytest.fixture(autouse=True)
def cpu_without_fast_bf16(monkeypatch):
    """Training tests run the fp32 path on every CPU: the bf16 choice is measured, so pin what it sees.

    Tests of the choice itself pin other speeds (``stub_matmul_speeds``); the probe is tested alone
    in tests/test_dtype.py.
    """
    pin_matmul_speeds(monkeypatch, 100.0, 20.0)


@pytest.fixture
def stub_matmul_speeds(monkeypatch):
    """``stub(fp32, bf16)``: the speeds the CPU dtype probe reports from now on; returns the dtypes it is asked."""
    return lambda fp32, bf16: pin_matmul_speeds(monkeypatch, fp32, bf16)
