"""Training that keeps the budget axis (issue 18 part 4): a recipe lists rollout caps, each group draws one."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from rlcot.train.data import build_data
from rlcot.train.recipe import ThinkingSpec, load_recipe
from rlcot.train.resolve import resolve_run
from rlcot.train.rollout import BudgetForcedRollout
from rlcot.train.trainer import build_trainer
from rlcot.thinking import ThinkingProtocol
from tests.train.test_trainer import recipe_for


def test_a_list_of_caps_reads_from_yaml_and_set_and_a_single_cap_stays_a_number():
    assert load_recipe(None, []).thinking.caps == (128,)
    listed = load_recipe(None, ["thinking.max_thinking_tokens=[128, 32, 64]"])
    assert listed.thinking.max_thinking_tokens == (128, 32, 64) and listed.thinking.caps == (32, 64, 128)
    run = resolve_run(listed, "cpu")
    assert run.budget.max_thinking_tokens == 128  # the largest bounds the completion length
    assert run.grpo.max_completion_length >= 128
    with pytest.raises(ValueError, match=r"min_thinking_tokens=40 exceeds max_thinking_tokens=32"):
        load_recipe(None, ["thinking.max_thinking_tokens=[32, 64]", "thinking.min_thinking_tokens=40"])
    with pytest.raises(ValueError, match=r"thinking\.max_thinking_tokens\.1: 'x' is not a whole number"):
        load_recipe(None, ["thinking.max_thinking_tokens=[32, x]"])
    with pytest.raises(ValueError, match="lists no cap"):
        load_recipe(None, ["thinking.max_thinking_tokens=[]"])


def test_each_group_draws_one_cap_seeded_by_step_and_every_cap_is_drawn():
    rollout = BudgetForcedRollout(tokenizer=None, protocol=ThinkingProtocol(), budget=None, cues={}, seed=3,
                                  caps=(2, 4, 8))
    prompts = [p for p in ("a", "b", "c", "d") for _ in range(4)]  # TRL: a prompt's generations are consecutive
    caps = rollout.group_caps(prompts, step=5, process=0)
    assert all(len(set(caps[g * 4:(g + 1) * 4])) == 1 for g in range(4))  # one cap a group
    assert caps == rollout.group_caps(prompts, step=5, process=0)  # a resumed step redraws the same caps
    drawn = {cap for step in range(30) for cap in rollout.group_caps(prompts, step, 0)}
    assert drawn == {2, 4, 8}


def test_rollouts_of_a_step_run_under_the_cap_their_group_drew(tmp_path, tiny_dir):
    from rlcot.models import load_policy

    recipe = recipe_for(tiny_dir, tmp_path, max_steps=1, num_generations=4, per_device_train_batch_size=8)
    recipe = replace(recipe, thinking=ThinkingSpec(max_thinking_tokens=(2, 8), max_answer_tokens=4))
    run = resolve_run(recipe, device="cpu", output_dir=tmp_path)
    model, tok = load_policy(str(tiny_dir), device="cpu", dtype=torch.float32)
    protocol = ThinkingProtocol()
    trainer = build_trainer(run, model, tok, protocol, build_data(recipe, tok, protocol))
    rollout, seen = trainer.rollout_func, []

    def recording(prompts, trainer_):
        out = rollout(prompts, trainer_)
        seen.append((out["cap"], list(rollout.last_traces)))
        return out

    trainer.rollout_func = recording
    trainer.train()
    (caps, traces), = seen
    assert set(caps) <= {2, 8} and len(caps) == len(traces) == 8
    for cap, trace in zip(caps, traces):
        assert trace.thinking_tokens <= cap and trace.budget == cap  # the random model runs to its cap
