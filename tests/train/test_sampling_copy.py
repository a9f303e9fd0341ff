"""The rollouts' sampling copy: the policy's weights now, LoRA merged, in the trainer's compute dtype."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from peft import LoraConfig, get_peft_model

from rlcot.builtin_models import tiny_llama
from rlcot.train.rollout import BudgetForcedRollout
from rlcot.train.sampling_copy import SamplingCopy

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def lora_policy(vocab_size: int, **lora):
    policy = get_peft_model(tiny_llama(vocab_size=vocab_size, seed=0),
                            LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=TARGETS, **lora))
    nudge_adapters(policy, seed=1)  # PEFT starts B at zero: a copy that ignored the adapters would pass
    return policy.eval()


def nudge_adapters(policy, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in policy.named_parameters():
            if ".lora_" in name:
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)


def logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


IDS = torch.tensor([[5, 17, 42, 99, 3, 250, 7]])


def test_an_fp32_copy_computes_the_policys_logits_and_follows_its_updates():
    policy = lora_policy(512)
    copy = SamplingCopy(torch.float32)
    torch.testing.assert_close(logits(copy.refresh(policy), IDS), logits(policy, IDS), atol=1e-5, rtol=1e-5)
    before = logits(copy.model, IDS)
    nudge_adapters(policy, seed=2)  # what an optimizer step does to the adapters
    assert not torch.allclose(logits(copy.model, IDS), logits(policy, IDS), atol=1e-4)  # stale until refreshed
    torch.testing.assert_close(logits(copy.refresh(policy), IDS), logits(policy, IDS), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(logits(copy.model, IDS), before, atol=1e-4)


def test_a_plain_policy_without_lora_is_copied_too():
    policy = tiny_llama(vocab_size=512, seed=0)
    copy = SamplingCopy(torch.float32).refresh(policy)
    assert copy is not policy
    torch.testing.assert_close(logits(copy, IDS), logits(policy, IDS), atol=1e-6, rtol=1e-6)


def test_a_bf16_copy_has_bf16_weights_fp32_buffers_tied_embeddings_and_the_policys_numbers():
    policy = lora_policy(512)
    copy = SamplingCopy(torch.bfloat16).refresh(policy)
    assert {p.dtype for p in copy.parameters()} == {torch.bfloat16}
    assert copy.model.rotary_emb.inv_freq.dtype == torch.float32  # positions are not rounded to bf16
    assert copy.lm_head.weight is copy.model.embed_tokens.weight
    assert not any(p.requires_grad for p in copy.parameters()) and not copy.training
    with torch.autocast("cpu", dtype=torch.bfloat16):  # how the trainer computes the policy under bf16
        reference = logits(policy, IDS)
        with policy.disable_adapter():
            without_adapters = logits(policy, IDS)
    # bf16 rounding apart (~0.01 here), against ~0.8 that the adapters move the logits
    assert (logits(copy, IDS) - reference).abs().max() < 0.05 < (without_adapters - reference).abs().max()


@pytest.mark.parametrize("lora, supported", [
    ({}, True),
    ({"use_dora": True}, False),  # DoRA's merge rescales the weight: not a plain delta
    ({"lora_bias": True}, False),  # the bias delta is not in get_delta_weight
])
def test_only_plain_lora_can_be_copied(lora, supported):
    assert SamplingCopy.supports(lora_policy(512, **lora)) is supported


def rollout(copy_policy: bool) -> BudgetForcedRollout:
    from rlcot.generation import Budget
    from rlcot.thinking import ThinkingProtocol

    return BudgetForcedRollout(None, ThinkingProtocol(), Budget(max_thinking_tokens=4), {}, copy_policy=copy_policy)


@pytest.mark.parametrize("bf16, lora, copied, dtype", [
    (True, True, True, torch.bfloat16),
    (True, False, True, torch.bfloat16),
    (False, True, False, None),  # fp32 runs sample from the policy, as before: a copy would double the weights
    (False, False, False, None),  # the copy would be the policy again
])
def test_the_rollout_samples_from_a_copy_in_the_trainers_compute_dtype(bf16, lora, copied, dtype):
    policy = lora_policy(512) if lora else tiny_llama(vocab_size=512, seed=0)
    sampler = rollout(copy_policy=True).sampler(policy, SimpleNamespace(bf16=bf16, fp16=False))
    assert (sampler is not policy) is copied
    if copied:
        assert next(sampler.parameters()).dtype == dtype


def test_without_copy_policy_or_with_dora_the_rollout_samples_from_the_policy():
    args = SimpleNamespace(bf16=True, fp16=False)
    policy = lora_policy(512)
    assert rollout(copy_policy=False).sampler(policy, args) is policy
    dora = lora_policy(512, use_dora=True)
    assert rollout(copy_policy=True).sampler(dora, args) is dora


def test_a_lora_grpo_run_on_cpu_samples_from_the_copy_and_trains(tmp_path, tiny_dir, stub_matmul_speeds):
    from rlcot.models import load_policy
    from rlcot.train.recipe import EvalSpec, Recipe, RewardSpec, TaskMix, ThinkingSpec
    from rlcot.train.resolve import resolve_run
    from rlcot.train.trainer import build_trainer

    stub_matmul_speeds(100.0, 600.0)  # a CPU where bf16 is clearly faster: the run trains under autocast
    recipe = Recipe(model=str(tiny_dir), tasks=(TaskMix("arith", size=8, eval_size=0),),
                    rewards=(RewardSpec(verifier="tests.train.plugins:even_length"),),
                    thinking=ThinkingSpec(max_thinking_tokens=6, max_answer_tokens=4, system_prompt=""),
                    peft={"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]},
                    grpo={"num_generations": 4, "per_device_train_batch_size": 4, "max_steps": 2,
                          "learning_rate": 5e-2, "save_strategy": "no", "temperature": 1.0},
                    eval=EvalSpec(every=0), output_dir=str(tmp_path))
    run = resolve_run(recipe, "cpu", tmp_path)
    assert run.grpo.bf16
    model, tok = load_policy(str(tiny_dir), device="cpu", dtype=torch.float32)
    trainer = build_trainer(run, model, tok)
    rollout, fresh = trainer.rollout_func, []
    sampler = rollout.sampler

    def recording(policy, args):  # at each step: is the sampler the policy's weights as they are now?
        drawn_from = sampler(policy, args)
        now = SamplingCopy(torch.bfloat16).refresh(policy)
        fresh.append(drawn_from is not policy and all(torch.equal(a, b) for a, b in
                                                      zip(drawn_from.parameters(), now.parameters())))
        return drawn_from

    rollout.sampler = recording
    trainer.train()
    assert fresh == [True, True]
    assert next(rollout.copy.model.parameters()).dtype == torch.bfloat16
    adapters = [p for name, p in trainer.model.named_parameters() if ".lora_B" in name]
    assert any(p.abs().sum() > 0 for p in adapters)  # it trained: B moved off zero, so step 2 sampled new weights
