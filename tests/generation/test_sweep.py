"""Budget forcing helpers and the cheap sweep (probe)."""

from __future__ import annotations

import pytest

from rlcot.generation.budget import Budget, answer_complete, reusable_at
from rlcot.generation.sweep import probe, sweep
from rlcot.generation.base import SamplingConfig
from rlcot.generation.hf import HFGenerator
from tests.conftest import make_request
from tests.noise import assert_same_up_to_ties

CUE = "The final answer is \\boxed{"


@pytest.mark.parametrize(
    "answer, done",
    [
        (CUE, False),  # nothing written yet
        (CUE + "42", False),  # box still open
        (CUE + "42}", True),
        (CUE + "42}.", True),
        (CUE + "\\frac{1}{2}", False),  # nested braces balanced inside, outer still open
        (CUE + "\\frac{1}{2}}", True),
        (CUE + "}}", True),  # a stray closing brace: it can never balance again
    ],
)
def test_answer_is_complete_when_the_cue_braces_balance(answer, done):
    assert answer_complete(answer, CUE) is done


def test_a_cue_without_braces_never_completes_an_answer():
    assert answer_complete("Answer: 42}", "Answer:") is False


@pytest.mark.parametrize("cap", [1, 3, 6, 11])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_probe_equals_a_fresh_capped_run_up_to_float_ties(tiny_model, tokenizer, protocol, cap, temperature):
    generator = HFGenerator(tiny_model, tokenizer, protocol)
    sampling = SamplingConfig(temperature=temperature)
    request = make_request(tokenizer, protocol, seed=3)
    top = Budget(max_thinking_tokens=12, max_answer_tokens=4)
    base = generator.generate([request], sampling, top)
    probed = probe(generator, [request], base, [cap], sampling, top)[cap][0]
    fresh = generator.generate([request], sampling, Budget(max_thinking_tokens=cap, max_answer_tokens=4))[0]
    # the probe prefills what the fresh run decodes step by step: equal up to float ties
    # (and when equal, forced flags, finish reason and counts are too)
    assert_same_up_to_ties(tiny_model, tokenizer, request, probed, fresh, sampling)
    assert probed.completion_ids[:cap] == base[0].completion_ids[:cap]  # the probe keeps the base's thinking
    assert probed.thinking_tokens == fresh.thinking_tokens == cap and probed.budget == cap


def test_probe_reuses_traces_that_finished_thinking_within_the_budget(scripted, tokenizer, protocol):
    model, request = scripted("5.</think> \\boxed{5}")
    generator = HFGenerator(model, tokenizer, protocol)
    top = Budget(max_thinking_tokens=20)
    base = generator.generate([request], SamplingConfig(), top)
    k = base[0].thinking_tokens
    sweep = probe(generator, [request], base, [k - 1, k, 20], SamplingConfig(), top)
    assert sweep[k][0].completion_ids == base[0].completion_ids and sweep[k][0].finish_reason == "closed"
    assert sweep[k - 1][0].capped and sweep[k - 1][0].thinking_tokens == k - 1
    fresh = generator.generate([request], SamplingConfig(), Budget(max_thinking_tokens=k - 1))[0]
    assert sweep[k - 1][0].completion_ids == fresh.completion_ids


def test_an_eos_ended_trace_is_reused_only_above_its_length(scripted, tokenizer, protocol):
    model, request = scripted("2 plus 3 is 5.")
    generator = HFGenerator(model, tokenizer, protocol)
    trace = generator.generate([request], SamplingConfig(), Budget(max_thinking_tokens=30))[0]
    k = trace.thinking_tokens
    assert trace.finish_reason == "eos"
    assert reusable_at(trace, k + 1) and not reusable_at(trace, k)
    at_k = generator.generate([request], SamplingConfig(), Budget(max_thinking_tokens=k))[0]
    assert at_k.capped and at_k.completion_ids == trace.completion_ids  # same text, cap fired first


@pytest.mark.parametrize(
    "budget, budgets, message",
    [
        (Budget(max_thinking_tokens=8, min_thinking_tokens=2), [4], "cap-only"),
        (Budget(), [4], "generated with a cap"),
        (Budget(max_thinking_tokens=8), [4, 16], r"\[16\]"),
    ],
)
def test_probe_refuses_what_it_cannot_answer_exactly(tiny_model, tokenizer, protocol, budget, budgets, message):
    generator = HFGenerator(tiny_model, tokenizer, protocol)
    request = make_request(tokenizer, protocol)
    with pytest.raises(ValueError, match=message):
        probe(generator, [request], [None], budgets, SamplingConfig(), budget)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_sweep_by_forking_equals_fresh_capped_runs_and_probing_up_to_float_ties(
    tiny_model, tokenizer, protocol, temperature
):
    generator = HFGenerator(tiny_model, tokenizer, protocol)
    sampling = SamplingConfig(temperature=temperature)
    requests = [make_request(tokenizer, protocol, q, seed=i, rid=i)
                for i, q in enumerate(["What is 2 + 3?", "Compute 7 * 6, please.", "Halve 10."])]
    settings = Budget(max_answer_tokens=4)
    budgets = [0, 2, 5, 9]
    swept = sweep(generator, requests, budgets, sampling, settings)
    top = generator.generate(requests, sampling, Budget(max_thinking_tokens=9, max_answer_tokens=4))
    probed = probe(generator, requests, top, budgets[:-1], sampling, Budget(max_thinking_tokens=9, max_answer_tokens=4))
    for cap in budgets:
        fresh = [generator.generate([r], sampling, Budget(max_thinking_tokens=cap, max_answer_tokens=4))[0]
                 for r in requests]
        # forked sequences share a batch, fresh ones run alone, probes prefill: equal up to float ties
        for request, forked, alone in zip(requests, swept[cap], fresh):
            assert_same_up_to_ties(tiny_model, tokenizer, request, forked, alone, sampling)
        assert all(t.budget == cap and t.thinking_tokens == cap for t in swept[cap])
        if cap < 9:
            for request, probed_trace, alone in zip(requests, probed[cap], fresh):
                assert_same_up_to_ties(tiny_model, tokenizer, request, probed_trace, alone, sampling)


def test_sweep_reuses_a_trace_that_closed_before_a_budget(scripted, tokenizer, protocol):
    model, request = scripted("5.</think> \\boxed{5}")
    k = len(tokenizer.encode("5.</think>", add_special_tokens=False))
    swept = sweep(HFGenerator(model, tokenizer, protocol), [request], [k - 1, k + 3, 20], SamplingConfig())
    assert swept[k - 1][0].capped and swept[k - 1][0].thinking_tokens == k - 1
    assert swept[k + 3][0].finish_reason == swept[20][0].finish_reason == "closed"
    assert swept[k + 3][0].completion_ids == swept[20][0].completion_ids and swept[k + 3][0].budget == k + 3


@pytest.mark.parametrize(
    "budgets, budget, message",
    [([], None, "empty"), ([-1, 4], None, "negative"), ([4, 8], Budget(min_thinking_tokens=2), "cap-only")],
)
def test_sweep_refuses_bad_budgets(tiny_model, tokenizer, protocol, budgets, budget, message):
    with pytest.raises(ValueError, match=message):
        sweep(HFGenerator(tiny_model, tokenizer, protocol), [], budgets, SamplingConfig(), budget)
