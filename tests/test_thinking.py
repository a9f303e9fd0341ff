"""The thinking protocol: prompt building and the documented split rules."""

from __future__ import annotations

import pytest

from rlcot.thinking import ThinkingProtocol, split_completion


@pytest.mark.parametrize(
    "text, thinking, answer",
    [
        ("The answer is 4.", "", "The answer is 4."),  # no tags: all answer
        ("<think>2+2=4</think>\\boxed{4}", "2+2=4", "\\boxed{4}"),
        ("<think>2+2=4, so \\boxed{4}", "2+2=4, so \\boxed{4}", None),  # never closed: no answer section
        ("2+2=4</think> 4", "2+2=4", " 4"),  # thinking opened in the prompt
        ("Sure. <think>a</think>b", "a", "b"),  # a preamble belongs to neither section
        ("<think>a</think>b</think>c", "a", "b</think>c"),  # the first close after the open ends thinking
        ("<think></think>", "", ""),  # closed at once, empty answer
        ("</think><think>x", "x", None),  # a close before the open does not count
    ],
)
def test_split_completion_follows_the_documented_rules(text, thinking, answer):
    sections = split_completion(text)
    assert (sections.thinking, sections.answer) == (thinking, answer)
    assert sections.closed is (answer is not None)


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
