"""One GRPO step on the real default model with LoRA: what a user of recipes/arith-grpo-cpu.yaml runs."""

from __future__ import annotations

import json

import pytest
import torch

from rlcot.train.data import build_data
from rlcot.train.recipe import EvalSpec, Recipe, TaskMix, ThinkingSpec
from rlcot.train.resolve import resolve_run
from rlcot.train.trainer import build_trainer
from rlcot.thinking import ThinkingProtocol

pytestmark = pytest.mark.default_model


def test_a_lora_grpo_step_on_the_default_model_updates_only_the_adapter(tmp_path):
    from rlcot.models import load_policy

    # its own copy: training switches on gradient checkpointing and train mode, which a shared model must not keep
    model, tokenizer = load_policy("smollm2-135m", device="cpu", dtype=torch.float32)
    recipe = Recipe(tasks=(TaskMix("arith", size=4, eval_size=0),), thinking=ThinkingSpec(max_thinking_tokens=16),
                    peft={"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]},
                    grpo={"num_generations": 4, "per_device_train_batch_size": 4, "max_steps": 1,
                          "learning_rate": 1e-3, "logging_steps": 1, "save_strategy": "no", "report_to": "none"},
                    eval=EvalSpec(budgets=(0,)), output_dir=str(tmp_path))
    run = resolve_run(recipe, device="cpu", output_dir=tmp_path)
    base = {name: p.detach().clone() for name, p in model.named_parameters()}
    protocol = ThinkingProtocol()
    trainer = build_trainer(run, model, tokenizer, protocol, build_data(recipe, tokenizer, protocol))
    trainer.train()
    assert trainer.state.global_step == 1
    named = dict(trainer.model.named_parameters())
    lora = {name: p for name, p in named.items() if "lora_" in name}
    assert lora and all(p.requires_grad for p in lora.values())
    frozen = {name.replace("base_model.model.", "").replace(".base_layer", ""): p for name, p in named.items()
              if "lora_" not in name}
    assert all(torch.equal(base[name], p) for name, p in frozen.items() if name in base)  # the base is untouched
    log = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert {"reward", "outcomes/correct", "outcomes/unparsed", "thinking/mean_tokens"} <= set(log)
    assert log["thinking/mean_tokens"] <= 16
