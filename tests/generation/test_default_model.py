"""The real default model, where realism matters: a real policy's traces and probes."""

from __future__ import annotations

import pytest

from rlcot.generation import Budget, probe
from rlcot.generation.base import SamplingConfig
from rlcot.generation.hf import HFGenerator
from rlcot.tasks import get_task
from rlcot.thinking import ThinkingProtocol
from tests.noise import assert_same_up_to_ties

pytestmark = pytest.mark.default_model


def test_probe_equals_fresh_capped_runs_on_the_default_model_up_to_float_ties(default_policy):
    model, tokenizer = default_policy
    protocol = ThinkingProtocol()
    generator = HFGenerator(model, tokenizer, protocol)
    task = get_task("arith")
    request = task.requests(task.rows(1, seed=5), tokenizer, protocol)
    top = Budget(max_thinking_tokens=24, max_answer_tokens=12)
    base = generator.generate(request, SamplingConfig(), top)
    sweep = probe(generator, request, base, [0, 6, 12], SamplingConfig(), top)
    for cap in (0, 6, 12):
        fresh = generator.generate(request, SamplingConfig(), Budget(max_thinking_tokens=cap, max_answer_tokens=12))
        # the probe prefills what the fresh run decodes step by step: equal up to a greedy near-tie
        assert_same_up_to_ties(model, tokenizer, request[0], sweep[cap][0], fresh[0], SamplingConfig())
        assert sweep[cap][0].thinking_tokens == cap
        assert sweep[cap][0].answer.startswith("\n\nThe final answer is \\boxed{")


def test_default_model_answers_an_easy_problem_in_a_box(default_policy):
    model, tokenizer = default_policy
    protocol = ThinkingProtocol()
    task = get_task("arith")
    rows = task.rows(2, seed=0)
    traces = HFGenerator(model, tokenizer, protocol).generate(
        task.requests(rows, tokenizer, protocol), SamplingConfig(), Budget(max_thinking_tokens=32)
    )
    for trace in traces:
        assert trace.thinking_tokens <= 32 and trace.finish_reason in ("capped", "eos", "closed")
        assert "\\boxed{" in trace.answer and trace.answer.rstrip(".").endswith("}")
        assert trace.thinking.strip()  # it did think, in words
