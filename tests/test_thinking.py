"""The thinking protocol: prompt building, its tags and its pre-filled opening."""

from __future__ import annotations

import pytest

from rlcot.thinking import ThinkingProtocol


def test_the_protocol_splits_with_its_own_tags():
    # the rules themselves are tested where they live: tests/verifiers/test_sections.py
    protocol = ThinkingProtocol(open_tag="<reason>", close_tag="</reason>")
    sections = protocol.split("<reason>a <think> b</reason>c")
    assert (sections.thinking, sections.answer) == ("a <think> b", "c")
    assert protocol.split("<reason>never closed").answer is None


def test_the_prefilled_opening_is_the_prompts_tail_from_the_tag(tokenizer):
    protocol = ThinkingProtocol()
    assert protocol.prefilled_opening(protocol.build_prompt(tokenizer, "Q?")) == "<think>\n"
    assert protocol.prefilled_opening("User: Q?\nAssistant: ") == ""


def test_prompt_prefills_think_and_carries_the_instruction(tokenizer):
    prompt = ThinkingProtocol().build_prompt(tokenizer, "What is 2 + 3?")
    assert prompt.endswith("<|im_start|>assistant\n<think>\n")
    assert "What is 2 + 3?" in prompt and "inside \\boxed{}" in prompt


class _ThinkingTemplate:
    """A chat template that opens the thinking section itself (R1-style)."""

    chat_template = "r1"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        return "".join(m["content"] for m in messages) + "<|Assistant|><think>\n"


def test_prompt_does_not_double_a_think_the_template_opens():
    prompt = ThinkingProtocol(instruct=False).build_prompt(_ThinkingTemplate(), "Q?")
    assert prompt == "Q?<|Assistant|><think>\n"


def test_a_protocol_without_prefill_leaves_the_turn_open(tokenizer):
    prompt = ThinkingProtocol(prefill=False).build_prompt(tokenizer, "Q?")
    assert prompt.endswith("<|im_start|>assistant\n")
