"""The hf backend: exact caps, forced tokens, determinism, and the forcing rules."""

from __future__ import annotations

import pytest

from rlcot.generation import Budget
from rlcot.generation.base import SamplingConfig
from rlcot.generation.hf import HFGenerator
from tests.conftest import ScriptedLM, make_request, script
from tests.noise import assert_same_up_to_ties

GREEDY = SamplingConfig()
SAMPLED = SamplingConfig(temperature=1.0, top_p=0.9)
CUE = "The final answer is \\boxed{"


def _requests(tokenizer, protocol, n=3):
    questions = ["What is 2 + 3?", "Tom has 12 apples and eats 5. How many are left?", "Compute 7 * 6."]
    return [make_request(tokenizer, protocol, questions[i % 3], seed=i, rid=i) for i in range(n)]


@pytest.mark.parametrize("cap", [0, 1, 7, 20])
def test_cap_is_respected_exactly_and_forced_tokens_are_marked(tiny_model, tokenizer, protocol, cap):
    generator = HFGenerator(tiny_model, tokenizer, protocol)
    traces = generator.generate(_requests(tokenizer, protocol), GREEDY, Budget(max_thinking_tokens=cap))
    forced_text = protocol.forced_close + CUE
    for trace in traces:
        assert trace.capped and trace.budget == cap
        assert trace.thinking_tokens == cap
        assert trace.forced[:cap] == [False] * cap
        forced_ids = [t for t, f in zip(trace.completion_ids, trace.forced) if f]
        assert tokenizer.decode(forced_ids) == forced_text
        assert all(lp is None for lp, f in zip(trace.logprobs, trace.forced) if f)
        assert all(lp is not None and lp <= 0 for lp, f in zip(trace.logprobs, trace.forced) if not f)
        assert trace.answer is not None and trace.answer.startswith("\n\n" + CUE)
        assert trace.answer_tokens == sum(not f for f in trace.forced[trace.thinking_end :])


def test_greedy_in_a_batch_is_greedy_alone_up_to_float_ties(tiny_model, tokenizer, protocol):
    generator = HFGenerator(tiny_model, tokenizer, protocol)
    requests = _requests(tokenizer, protocol)
    budget = Budget(max_thinking_tokens=24, max_answer_tokens=6)
    batched = generator.generate(requests, GREEDY, budget)
    for request, trace in zip(requests, batched):
        alone = generator.generate([request], GREEDY, budget)[0]
        # other batch shapes, other float rounding: equal up to a near-tie of the top two logits
        assert_same_up_to_ties(tiny_model, tokenizer, request, trace, alone, GREEDY)


def test_sampling_is_reproducible_by_seed_and_independent_of_batch(tiny_model, tokenizer, protocol):
    generator = HFGenerator(tiny_model, tokenizer, protocol, batch_size=2)
    requests = _requests(tokenizer, protocol)
    budget = Budget(max_thinking_tokens=16, max_answer_tokens=4)
    first = generator.generate(requests, SAMPLED, budget)
    again = generator.generate(requests, SAMPLED, budget)
    assert [t.completion_ids for t in first] == [t.completion_ids for t in again]  # same call, same shapes: exact
    for request, trace in zip(requests, first):
        alone = generator.generate([request], SAMPLED, budget)[0]
        # top-p on this near-uniform model: noise can move a token across the nucleus edge
        assert_same_up_to_ties(tiny_model, tokenizer, request, trace, alone, SAMPLED)
    # same prompt, other seed: other tokens
    reseeded = generator.generate([make_request(tokenizer, protocol, seed=99)], SAMPLED, budget)[0]
    assert reseeded.completion_ids != first[0].completion_ids


def test_results_come_back_in_request_order_across_batches(tiny_model, tokenizer, protocol):
    generator = HFGenerator(tiny_model, tokenizer, protocol, batch_size=2)
    requests = _requests(tokenizer, protocol, n=5)
    traces = generator.generate(requests, GREEDY, Budget(max_thinking_tokens=3, max_answer_tokens=2))
    assert [t.request_id for t in traces] == [r.request_id for r in requests]
    assert [t.prompt_ids for t in traces] == [r.prompt_ids for r in requests]


def test_max_tokens_bounds_an_uncapped_completion(tiny_model, tokenizer, protocol):
    generator = HFGenerator(tiny_model, tokenizer, protocol)
    trace = generator.generate(_requests(tokenizer, protocol, 1), SamplingConfig(max_tokens=9), Budget())[0]
    assert trace.finish_reason == "length" and len(trace.completion_ids) == 9 and not trace.capped


def test_model_that_closes_its_thinking_answers_freely(scripted, tokenizer, protocol):
    model, request = scripted("2 plus 3 is 5.</think> The answer is \\boxed{5}.")
    trace = HFGenerator(model, tokenizer, protocol).generate([request], GREEDY, Budget(max_thinking_tokens=50))[0]
    assert trace.finish_reason == "closed" and not trace.capped
    assert trace.thinking.strip() == "2 plus 3 is 5." and trace.answer == " The answer is \\boxed{5}."
    assert not any(trace.forced)
    assert trace.thinking_tokens == trace.thinking_end == len(tokenizer.encode("2 plus 3 is 5.</think>"))


def test_close_on_the_last_budgeted_token_counts_as_closed(scripted, tokenizer, protocol):
    model, request = scripted("So 5.</think> 5")
    k = len(tokenizer.encode("So 5.</think>"))
    trace = HFGenerator(model, tokenizer, protocol).generate([request], GREEDY, Budget(max_thinking_tokens=k))[0]
    assert trace.finish_reason == "closed" and trace.thinking_tokens == k and not any(trace.forced)


def test_eos_inside_thinking_forces_the_answer(scripted, tokenizer, protocol):
    model, request = scripted("2 plus 3 is 5.")  # then EOS, never a delimiter
    generator = HFGenerator(model, tokenizer, protocol)
    trace = generator.generate([request], GREEDY, Budget(max_thinking_tokens=100))[0]
    assert trace.finish_reason == "eos" and not trace.capped
    assert tokenizer.eos_token_id not in trace.thinking_ids  # the EOS in thinking was taken back
    assert trace.thinking_tokens == len(tokenizer.encode("2 plus 3 is 5."))
    assert trace.answer.startswith("\n\n" + CUE)


def test_eos_inside_thinking_without_forcing_leaves_no_answer(scripted, tokenizer, protocol):
    model, request = scripted("2 plus 3 is 5.")
    budget = Budget(max_thinking_tokens=100, answer_after_eos=False)
    trace = HFGenerator(model, tokenizer, protocol).generate([request], GREEDY, budget)[0]
    assert trace.finish_reason == "eos" and trace.answer is None
    assert trace.completion_ids[-1] == tokenizer.eos_token_id


def test_answer_stops_when_the_cue_braces_balance(scripted, tokenizer, protocol):
    model, request = scripted("on " * 100)
    budget = Budget(max_thinking_tokens=2, max_answer_tokens=5)
    trace = HFGenerator(model, tokenizer, protocol).generate([request], GREEDY, budget)[0]
    # after the cap the script goes on "on on on", which never closes the box: length
    assert trace.finish_reason == "length" and trace.answer_tokens == 5 and trace.capped
    # the script runs on by length: the answer must start where the forced delimiter and cue end
    _, request = scripted("")
    thinking = tokenizer.encode("a b", add_special_tokens=False)
    # the generator encodes delimiter and cue apart (encoding them together merges a token)
    forced = tokenizer.encode(protocol.forced_close, add_special_tokens=False) + tokenizer.encode(
        CUE, add_special_tokens=False
    )
    answer = tokenizer.encode("42} and trailing text", add_special_tokens=False)
    model = ScriptedLM(len(request.prompt_ids), script(thinking + forced + answer), len(tokenizer),
                       tokenizer.eos_token_id)
    trace = HFGenerator(model, tokenizer, protocol).generate([request], GREEDY, Budget(max_thinking_tokens=2))[0]
    assert trace.finish_reason == "capped" and trace.answer.endswith("\\boxed{42}")
    assert trace.answer_tokens == len(tokenizer.encode("42}", add_special_tokens=False))


def _always_closing(tokenizer):
    """A model that tries to close its thinking at once, every time, then stops."""
    close = tokenizer.encode("</think>", add_special_tokens=False)

    def respond(completion):
        text = tokenizer.decode(completion)
        if "</think>" in text[-len("</think>"):]:
            return None
        for k in range(len(close), 0, -1):  # continue a partial delimiter
            if completion[-k:] == close[:k] and k < len(close):
                return close[k]
        return close[0]

    return respond


@pytest.mark.parametrize("max_extensions", [0, 1, 2])
def test_early_close_is_replaced_by_wait_until_the_minimum(tokenizer, protocol, max_extensions):
    request = make_request(tokenizer, protocol)
    model = ScriptedLM(len(request.prompt_ids), _always_closing(tokenizer), len(tokenizer), tokenizer.eos_token_id)
    budget = Budget(max_thinking_tokens=40, min_thinking_tokens=30, max_extensions=max_extensions)
    trace = HFGenerator(model, tokenizer, protocol).generate([request], GREEDY, budget)[0]
    assert trace.extensions == max_extensions
    assert trace.thinking.count("Wait") == max_extensions and trace.thinking.count("</think>") == 0
    assert trace.finish_reason == "closed" and trace.answer == ""
    # forced "Wait"s do not count; the model's own tokens do: only the final delimiter is left
    assert trace.thinking_tokens == len(tokenizer.encode("</think>", add_special_tokens=False))
    assert sum(trace.forced) == max_extensions * len(tokenizer.encode("Wait", add_special_tokens=False))


def test_a_resumed_request_continues_from_its_thinking(tiny_model, tokenizer, protocol):
    generator = HFGenerator(tiny_model, tokenizer, protocol)
    request = _requests(tokenizer, protocol, 1)[0]
    full = generator.generate([request], GREEDY, Budget(max_thinking_tokens=12, max_answer_tokens=3))[0]
    from dataclasses import replace

    resumed = replace(request, resume_ids=full.completion_ids[:5], resume_logprobs=full.logprobs[:5])
    again = generator.generate([resumed], GREEDY, Budget(max_thinking_tokens=12, max_answer_tokens=3))[0]
    assert again.completion_ids[:5] == full.completion_ids[:5] and again.thinking_tokens == 12
    # the resumed tokens are prefilled, not decoded one by one: equal up to float ties
    assert_same_up_to_ties(tiny_model, tokenizer, request, again, full, GREEDY)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_thinking_tokens=-1), "negative"),
        (dict(max_thinking_tokens=4, min_thinking_tokens=8), "exceeds"),
        (dict(max_answer_tokens=0), "max_answer_tokens"),
        (dict(extension=""), "extension"),
    ],
)
def test_bad_budgets_are_refused_with_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Budget(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(temperature=-0.1), "temperature"), (dict(top_p=0), "top_p"), (dict(max_tokens=0), "max_tokens")],
)
def test_bad_sampling_is_refused_with_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingConfig(**kwargs)


def test_resuming_past_the_cap_is_refused(tiny_model, tokenizer, protocol):
    from dataclasses import replace

    request = replace(_requests(tokenizer, protocol, 1)[0], resume_ids=[5, 6, 7])
    with pytest.raises(ValueError, match="over the cap"):
        HFGenerator(tiny_model, tokenizer, protocol).generate([request], GREEDY, Budget(max_thinking_tokens=2))
