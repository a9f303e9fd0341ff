"""The thinking protocol: prompt building, its tags and its pre-filled opening."""

from __future__ import annotations

import json

import pytest

from rlcot.tasks import TASKS
from rlcot.thinking import DEFAULT_INSTRUCTION, ThinkingProtocol, answer_format, thinks_natively


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


# ------------------------------------------------------------------ models that think natively


class _Template:
    """A tokenizer stand-in whose chat template is ``source`` and whose generation prompt is ``opening``."""

    def __init__(self, source: str, opening: str = "<|assistant|>"):
        self.chat_template, self.opening, self.calls = source, opening, []

    def apply_chat_template(self, messages, tokenize, add_generation_prompt, **options):
        self.calls.append(options)
        closed = "<think>\n\n</think>\n\n" if options.get("enable_thinking") is False else ""
        return "".join(f"<|{m['role']}|>{m['content']}" for m in messages) + self.opening + closed


@pytest.mark.parametrize("source, opening, native", [
    ("{{ messages }}", "<|assistant|>", False),  # SmolLM2, Llama, Gemma: nothing about thinking
    ("{% if enable_thinking is defined %}...{% endif %}", "<|assistant|>", True),  # Qwen3: the switch exists
    ("...", "<|Assistant|><think>\n", True),  # R1 distills: the generation prompt opens it
    # Qwen3-Instruct-2507 style: <think> only to strip old reasoning from history; it answers without thinking
    ("{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}", "<|a|>", False),
])
def test_native_thinking_is_read_from_the_template_not_the_name(source, opening, native):
    assert thinks_natively(_Template(source, opening), ThinkingProtocol()) is native


def test_a_native_model_gets_the_answer_format_and_no_think_format():
    prompt = ThinkingProtocol().build_prompt(_Template("enable_thinking"), "Q?")
    assert prompt == "<|user|>Q?\n\nWrite the final answer as a number inside \\boxed{}.<|assistant|><think>\n"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_tasks_instruction_keeps_its_answer_format_for_a_native_model(name):
    task = TASKS[name]
    kept = answer_format(task.full_instruction)
    assert "<think>" not in kept and "</think>" not in kept and kept[0].isupper()
    assert task.full_instruction.endswith(kept[1:])  # the answer format itself, word for word


def test_a_users_own_instruction_is_kept_whole_for_a_native_model():
    assert answer_format("Answer in French.") == "Answer in French."
    stated = answer_format(DEFAULT_INSTRUCTION + " Think for at most 8 tokens.")
    assert stated == "Write the final answer as a number inside \\boxed{}. Think for at most 8 tokens."


def test_template_options_reach_the_template_and_a_closed_thought_is_not_opened_again():
    template = _Template("enable_thinking")
    protocol = ThinkingProtocol(chat_template_kwargs={"enable_thinking": False})
    prompt = protocol.build_prompt(template, "Q?")
    assert prompt.endswith("<|assistant|><think>\n\n</think>\n\n") and prompt.count("<think>") == 1
    assert template.calls and all(call == {"enable_thinking": False} for call in template.calls)
    assert protocol.closed_in_prompt(prompt) and not protocol.opened_in_prompt(prompt)
    assert protocol.prefilled_opening(prompt) == "<think>\n\n</think>\n\n"
    sections = protocol.split(protocol.prefilled_opening(prompt) + "The answer is \\boxed{4}.")
    assert (sections.thinking.strip(), sections.answer) == ("", "\n\nThe answer is \\boxed{4}.")


@pytest.mark.parametrize("prompt, closed", [
    ("<|a|><think>\n\n</think>\n\n", True),
    ("<|a|><think>\n", False),  # open: the model thinks next
    ("Q mentions </think> oddly<|a|>", False),  # no opening at all
    ("<|u|>why <think> then </think>?<|a|>", False),  # tags inside the question, not at the end
])
def test_only_a_thought_the_template_closed_at_the_end_counts_as_closed(prompt, closed):
    assert ThinkingProtocol().closed_in_prompt(prompt) is closed


def test_the_recorded_protocol_keeps_old_keys_and_rebuilds_the_same_protocol():
    assert "chat_template_kwargs" not in ThinkingProtocol().to_dict()  # old stores' keys hold
    protocol = ThinkingProtocol(system="", chat_template_kwargs={"enable_thinking": True})
    assert ThinkingProtocol.from_dict(json.loads(json.dumps(protocol.to_dict()))) == protocol
    with pytest.raises(ValueError, match="unknown field\\(s\\) thinking_budget"):
        ThinkingProtocol.from_dict({"thinking_budget": 8})


@pytest.mark.parametrize("options, message", [
    ({"tokenize": True}, "a parameter of apply_chat_template itself"),
    ({"enable-thinking": True}, "not a template variable name"),
    ({"x": float("nan")}, "not a JSON value"),
    (["enable_thinking"], "not a mapping"),
])
def test_template_options_that_cannot_reach_the_template_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        ThinkingProtocol(chat_template_kwargs=options)


def test_a_template_that_refuses_the_messages_is_a_one_line_value_error():
    class _NoSystem(_Template):
        def apply_chat_template(self, messages, tokenize, add_generation_prompt, **options):
            from jinja2 import TemplateError

            raise TemplateError("System role not supported")

    with pytest.raises(ValueError, match=r"refuses a system\+user conversation \(System role not supported\)"):
        ThinkingProtocol(system="Be brief.").build_prompt(_NoSystem("x"), "Q?")
