"""Continuous batching in the hf backend: sequences that join a running batch decode exactly
as they would alone, and they do join it (the batch is refilled as sequences finish)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig

from rlcot.generation import Budget
from rlcot.generation.base import SamplingConfig
from rlcot.generation.hf import HFGenerator
from rlcot.generation.sampling import inverse_cdf
from rlcot.generation.sweep import sweep
from tests.noise import assert_same_up_to_ties
from tests.conftest import make_request

GREEDY = SamplingConfig()
QUESTIONS = ["What is 2 + 3?", "Tom has 12 apples and eats 5. How many are left?", "Compute 7 * 6.",
             "Halve 10.", "What is 9 - 4, exactly?", "Add 1 and 1.", "Is 7 prime? Say yes or no.", "Double 21."]
# What each scripted request writes: prompts of different lengths, thinking of very different
# lengths (so sequences finish at different steps), closed, ended by EOS, or run into the cap.
SCRIPTS = ["So 5.</think> \\boxed{5}", "12 minus 5 " * 6 + "is 7.</think> The answer is \\boxed{7}.",
           "7 times 6.", "on " * 40, "9 - 4 = 5, so the answer is five.</think> \\boxed{5}", "2.</think>",
           "seven " * 15 + "is prime", "42.</think> \\boxed{42}"]


class PromptScriptedLM(torch.nn.Module):
    """A stand-in model whose every prompt has its own script (``ScriptedLM`` with many prompts).

    Like ``ScriptedLM`` it keeps the token ids in the KV cache it is handed and reads
    the attention mask, so it sees exactly what a real model would attend to. It also
    checks each slot's position ids against the real tokens it attends to, and records
    every forward as (kind, slots, columns attended): the batch a real model would run.
    """

    def __init__(self, scripts: dict[tuple[int, ...], list[int]], vocab_size: int, eos_id: int):
        super().__init__()
        self.scripts, self.eos_id = scripts, eos_id
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the generator a device
        self.config = LlamaConfig(vocab_size=vocab_size, num_hidden_layers=1)
        self.generation_config = SimpleNamespace(eos_token_id=eos_id)
        self.calls: list[tuple[str, int, int]] = []

    def forward(self, input_ids, attention_mask, position_ids, past_key_values, use_cache, logits_to_keep):
        kind = "prefill" if input_ids.shape[1] > 1 else "step"
        self.calls.append((kind, input_ids.shape[0], attention_mask.shape[1]))
        fed = input_ids[:, None, :, None].float()  # token ids < 2^24 are exact in float32
        history, _ = past_key_values.update(fed, fed, 0)
        logits = torch.full((input_ids.shape[0], 1, self.config.vocab_size), -1e4)
        for s in range(input_ids.shape[0]):
            seen = history[s, 0, :, 0][attention_mask[s].bool()].long().tolist()
            if position_ids[s, -1] != len(seen) - 1:
                raise AssertionError(f"slot {s}: position {int(position_ids[s, -1])} after {len(seen) - 1} tokens")
            prompt = next(p for p in self.scripts if tuple(seen[: len(p)]) == p)
            completion, script = seen[len(prompt) :], self.scripts[prompt]
            token = script[len(completion)] if len(completion) < len(script) else self.eos_id
            logits[s, 0, token] = 0.0
        return SimpleNamespace(logits=logits, past_key_values=past_key_values)


@pytest.fixture
def scripted_batch(tokenizer, protocol):
    """(model, requests): one request per question, each with its own scripted completion."""
    requests = [make_request(tokenizer, protocol, q, seed=i, rid=f"q{i}") for i, q in enumerate(QUESTIONS)]
    scripts = {tuple(r.prompt_ids): tokenizer.encode(text, add_special_tokens=False)
               for r, text in zip(requests, SCRIPTS)}
    return PromptScriptedLM(scripts, len(tokenizer), tokenizer.eos_token_id), requests


def _alone(generator, requests, sampling, budget):
    return [generator.generate([r], sampling, budget)[0] for r in requests]


def _fields(trace):
    return (trace.request_id, trace.completion_ids, trace.forced, trace.thinking_tokens, trace.answer_tokens,
            trace.finish_reason, trace.capped, trace.budget)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5])
def test_refilled_batches_equal_one_request_at_a_time_in_request_order(scripted_batch, tokenizer, protocol,
                                                                       batch_size):
    model, requests = scripted_batch
    generator = HFGenerator(model, tokenizer, protocol, batch_size=batch_size)
    budget = Budget(max_thinking_tokens=30, max_answer_tokens=8)
    batched = generator.generate(requests, GREEDY, budget)
    assert [_fields(t) for t in batched] == [_fields(t) for t in _alone(generator, requests, GREEDY, budget)]
    assert [t.request_id for t in batched] == [r.request_id for r in requests]


def test_sequences_join_the_running_batch_as_others_finish(scripted_batch, tokenizer, protocol):
    model, requests = scripted_batch
    budget = Budget(max_thinking_tokens=30, max_answer_tokens=8)
    results = {}
    for refill_at in (0.0, 0.75):
        model.calls.clear()
        generator = HFGenerator(model, tokenizer, protocol, batch_size=4, refill_at=refill_at)
        results[refill_at] = [_fields(t) for t in generator.generate(requests, GREEDY, budget)]
        results[refill_at, "calls"] = list(model.calls)
    assert results[0.0] == results[0.75]
    drained, refilled = results[0.0, "calls"], results[0.75, "calls"]
    # without refill: two batches of 4, each run until its longest sequence
    assert [slots for kind, slots, _ in drained if kind == "prefill"] == [4, 4]
    # with it: groups are prefilled while other sequences are still decoding, and merged into their steps
    merges = [i for i, (kind, slots, _) in enumerate(refilled) if kind == "prefill" and i > 0
              and refilled[i + 1][0] == "step" and refilled[i + 1][1] > slots]
    assert merges
    steps = [slots for kind, slots, _ in refilled if kind == "step"]
    assert max(steps) <= 4 and len(steps) < len([1 for kind, _, _ in drained if kind == "step"])


def test_a_batch_refills_only_below_the_threshold(scripted_batch, tokenizer, protocol):
    model, requests = scripted_batch
    generator = HFGenerator(model, tokenizer, protocol, batch_size=4, refill_at=0.75)
    generator.generate(requests, GREEDY, Budget(max_thinking_tokens=30, max_answer_tokens=8))
    prefills = [(i, slots) for i, (kind, slots, _) in enumerate(model.calls) if kind == "prefill"]
    for i, slots in prefills[1:]:
        running = model.calls[i + 1][1] - slots  # sequences already decoding when this group joined
        assert running < 3 and running + slots <= 4  # 3 = 0.75 * 4: a fuller batch is left alone


def test_sequences_that_start_with_forced_tokens_join_a_running_batch(scripted_batch, tokenizer, protocol):
    model, requests = scripted_batch
    budget = Budget(max_thinking_tokens=6, max_answer_tokens=8)
    full = HFGenerator(model, tokenizer, protocol, batch_size=8).generate(requests, GREEDY, budget)
    # resumed at the cap (probing): delimiter and cue are forced before the first sampled token
    resumed = [replace(r, resume_ids=t.completion_ids[:6], resume_logprobs=t.logprobs[:6])
               for r, t in zip(requests, full) if t.thinking_tokens == 6]
    assert resumed
    zero = Budget(max_thinking_tokens=0, max_answer_tokens=8)
    mixed = requests[:3] + resumed
    generator = HFGenerator(model, tokenizer, protocol, batch_size=2)
    assert ([_fields(t) for t in generator.generate(mixed, GREEDY, budget)]
            == [_fields(t) for t in _alone(generator, mixed, GREEDY, budget)])
    assert ([_fields(t) for t in generator.generate(requests, GREEDY, zero)]
            == [_fields(t) for t in _alone(generator, requests, GREEDY, zero)])


def test_a_sequence_wider_than_the_running_batch_widens_it_to_the_left(tokenizer, protocol):
    # Requests go longest first by prompt + resumed thinking, but a sequence resumed at its cap
    # also prefills the forced delimiter and cue, so it can be wider than the batch it joins.
    long, short, resumed = (make_request(tokenizer, protocol, QUESTIONS[i], seed=i, rid=i) for i in (1, 4, 3))
    k = len(short.prompt_ids) - len(resumed.prompt_ids) - 1  # sorts just after `short`
    thinking = tokenizer.encode("a b c d e f g h i j " * 4, add_special_tokens=False)  # its answer reads on
    resumed = replace(resumed, resume_ids=thinking[:k])
    scripts = {tuple(long.prompt_ids): tokenizer.encode("on " * 20, add_special_tokens=False),
               tuple(short.prompt_ids): [],  # EOS at once: its slot frees after one step
               tuple(resumed.prompt_ids): thinking}
    model = PromptScriptedLM(scripts, len(tokenizer), tokenizer.eos_token_id)
    budget = Budget(max_thinking_tokens=k, max_answer_tokens=6, answer_after_eos=False)
    generator = HFGenerator(model, tokenizer, protocol, batch_size=2)
    batched = generator.generate([long, short, resumed], GREEDY, budget)
    joined = next(i for i, (kind, slots, _) in enumerate(model.calls) if kind == "prefill" and i > 0)
    assert model.calls[joined][2] > model.calls[joined - 1][2]  # the newcomer is wider than the window
    assert model.calls[joined + 1] == ("step", 2, model.calls[joined][2] + 1)  # which now starts where it does
    assert [_fields(t) for t in batched] == [_fields(t) for t in _alone(generator, [long, short, resumed], GREEDY,
                                                                         budget)]


@pytest.mark.parametrize("batch_size", [2, 3, 8])
def test_a_refilled_sweep_forks_exactly_like_fresh_capped_runs(scripted_batch, tokenizer, protocol, batch_size):
    model, requests = scripted_batch
    budgets = [0, 3, 8, 20]
    settings = Budget(max_answer_tokens=8)
    swept = sweep(HFGenerator(model, tokenizer, protocol, batch_size=batch_size), requests, budgets, GREEDY, settings)
    alone = HFGenerator(model, tokenizer, protocol, batch_size=1)
    for cap in budgets:
        fresh = _alone(alone, requests, GREEDY, replace(settings, max_thinking_tokens=cap))
        assert [_fields(t) for t in swept[cap]] == [_fields(t) for t in fresh], f"budget {cap}"


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_real_model_decodes_the_same_with_refill_as_alone(tiny_model, tokenizer, protocol, temperature):
    # Real attention over merged, padded and regrown caches: 110 tokens outgrow the first
    # buffers, so the cache is moved at least once while sequences come and go.
    requests = [make_request(tokenizer, protocol, q, seed=i, rid=i) for i, q in enumerate(QUESTIONS[:5])]
    sampling = SamplingConfig(temperature=temperature, max_tokens=110)
    budget = Budget(max_thinking_tokens=None, answer_after_eos=False)
    generator = HFGenerator(tiny_model, tokenizer, protocol, batch_size=2)
    batched = generator.generate(requests, sampling, budget)
    alone = _alone(generator, requests, sampling, budget)
    # different batch shapes: equal up to the first float-noise tie (tests/noise.py)
    for request, together, single in zip(requests, batched, alone):
        assert_same_up_to_ties(tiny_model, tokenizer, request, together, single, sampling)


def test_a_real_model_sweeps_the_same_with_refill_as_fresh_runs(tiny_model, tokenizer, protocol):
    requests = [make_request(tokenizer, protocol, q, seed=i, rid=i) for i, q in enumerate(QUESTIONS[:5])]
    sampling = SamplingConfig(temperature=1.0)
    settings = Budget(max_answer_tokens=4)
    budgets = [0, 5, 40, 90]
    swept = sweep(HFGenerator(tiny_model, tokenizer, protocol, batch_size=2), requests, budgets, sampling, settings)
    generator = HFGenerator(tiny_model, tokenizer, protocol, batch_size=1)
    for cap in budgets:
        fresh = _alone(generator, requests, sampling, replace(settings, max_thinking_tokens=cap))
        # forked sequences share a refilled batch, fresh ones run alone: equal up to float ties (tests/noise.py)
        for request, forked, single in zip(requests, swept[cap], fresh):
            assert_same_up_to_ties(tiny_model, tokenizer, request, forked, single, sampling)
        assert all(t.budget == cap and t.thinking_tokens <= cap for t in swept[cap])


@pytest.mark.parametrize("refill_at", [-0.1, 1.5])
def test_a_refill_threshold_outside_0_1_is_refused(tiny_model, tokenizer, protocol, refill_at):
    with pytest.raises(ValueError, match=f"refill_at={refill_at} must be a fraction"):
        HFGenerator(tiny_model, tokenizer, protocol, refill_at=refill_at)


@pytest.mark.parametrize("vocab", [49152, 1000, 7])  # a multiple of the block, and not
def test_the_two_level_sampler_picks_what_one_cumulative_sum_would(vocab):
    generator = torch.Generator().manual_seed(vocab)
    probs = torch.softmax(4 * torch.randn(32, vocab, generator=generator), -1)
    probs[:16, ::3] = 0  # excluded tokens (as top-p leaves them): never picked
    uniforms = torch.rand(32, generator=generator, dtype=torch.float64)
    cdf = probs.double().cumsum(-1)
    expected = torch.searchsorted(cdf, (uniforms * cdf[:, -1])[:, None], right=True)[:, 0]
    picked = inverse_cdf(probs, uniforms)
    assert picked.tolist() == expected.tolist()
    assert all(probs[r, t] > 0 for r, t in enumerate(picked.tolist()))
