"""Fixtures for training tests: the tiny random model saved as a directory, as a user's model would be."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, tokenizer, tiny_model):
    path = tmp_path_factory.mktemp("tiny")
    tiny_model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(autouse=True)
def cpu_without_fast_bf16(monkeypatch):
    """Training tests run the fp32 path on every CPU: the bf16 choice is measured, so pin what it sees.

    Tests of the choice itself patch ``cpu_matmul_speed`` again; the measurement is tested alone.
    """
    monkeypatch.setattr("rlcot.train.recipe.cpu_matmul_speed", lambda: (100.0, 20.0))
