"""A training run's directory read through rlcot.runinfo: checkpoints, the newest complete one, the
final weights and their step, the trainer state, the warm-up model; damage reads as absence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlcot.runinfo import (
    final_checkpoint,
    final_step,
    is_saved_model,
    last_checkpoint,
    latest_trainer_state,
    saved_weights,
    trainer_state,
)


def checkpoint(run: Path, step: int, **state) -> Path:
    """``run/checkpoint-step``, with a trainer_state.json holding ``state`` unless it is empty (a save cut off)."""
    path = run / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if state:
        (path / "trainer_state.json").write_text(json.dumps(state))
    return path


def test_last_checkpoint_skips_a_newer_one_killed_mid_save(tmp_path):
    complete = checkpoint(tmp_path, 2, global_step=2)
    checkpoint(tmp_path, 10, global_step=10)
    (tmp_path / "checkpoint-10" / "trainer_state.json").write_text('{"global_step": 1')  # torn
    checkpoint(tmp_path, 12)  # no state yet
    (tmp_path / "checkpoint-x").mkdir()  # not a checkpoint name
    assert last_checkpoint(tmp_path) == complete
    assert last_checkpoint(tmp_path / "missing") is None


@pytest.mark.parametrize("text", ['{"global_step": 1', "[1, 2]", "\xff"])  # torn, not an object, not UTF-8
def test_a_damaged_trainer_state_reads_as_none(tmp_path, text):
    (tmp_path / "trainer_state.json").write_bytes(text.encode("latin-1"))
    assert trainer_state(tmp_path) is None


def test_the_latest_trainer_state_is_the_top_level_one_else_the_newest_readable_checkpoints(tmp_path):
    checkpoint(tmp_path, 5, global_step=5)
    checkpoint(tmp_path, 9)
    assert latest_trainer_state(tmp_path) == {"global_step": 5}
    (tmp_path / "trainer_state.json").write_text(json.dumps({"global_step": 9}))
    assert latest_trainer_state(tmp_path) == {"global_step": 9}
    assert latest_trainer_state(tmp_path / "missing") is None


def test_final_weights_take_the_step_their_state_gives_else_the_checkpoints(tmp_path):
    assert final_step(tmp_path) is None and saved_weights(tmp_path) == []
    (tmp_path / "config.json").write_text("{}")
    assert saved_weights(tmp_path) == [(None, tmp_path)]  # nothing says which step
    checkpoint(tmp_path, 4, global_step=4, max_steps=6)
    assert final_step(tmp_path) == 6  # where the newest checkpoint says training ends
    (tmp_path / "trainer_state.json").write_text(json.dumps({"global_step": 4}))
    assert saved_weights(tmp_path) == [(4, tmp_path / "checkpoint-4")]  # the same weights once
    (tmp_path / "trainer_state.json").write_text(json.dumps({"global_step": 7}))
    assert saved_weights(tmp_path) == [(4, tmp_path / "checkpoint-4"), (7, tmp_path)]


def test_final_checkpoint_is_the_last_step_or_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="holds no checkpoint-N; train it first"):
        final_checkpoint(tmp_path)
    checkpoint(tmp_path, 3, global_step=3, max_steps=4)
    with pytest.raises(ValueError, match=r"step 3 of 4: the last step was not checkpointed; set grpo\.save_steps=1"):
        final_checkpoint(tmp_path)
    last = checkpoint(tmp_path, 4, global_step=4, max_steps=4)
    assert final_checkpoint(tmp_path) == last


def test_a_saved_model_needs_its_weights_and_tokenizer(tmp_path):
    for name in ("config.json", "model.safetensors", "tokenizer_config.json"):
        (tmp_path / name).write_text("{}")
    assert not is_saved_model(tmp_path)  # killed before the last tokenizer file
    (tmp_path / "tokenizer.json").write_text("{}")
    assert is_saved_model(tmp_path)
