"""Fixtures for training tests (the tiny model saved as a directory, ``tiny_dir``, is in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def cpu_without_fast_bf16(monkeypatch):
    """Training tests run the fp32 path on every CPU: the bf16 choice is measured, so pin what it sees.

    Tests of the choice itself patch ``cpu_matmul_speed`` again; the measurement is tested alone.
    """
    monkeypatch.setattr("rlcot.train.recipe.cpu_matmul_speed", lambda: (100.0, 20.0))
