"""The thinking protocol: how a prompt asks for thinking, and how a completion splits.

The assistant turn opens with ``<think>``; the model thinks, closes with ``</think>``
and then answers (math answers in ``\\boxed{}``), the format DeepSeek-R1 and Qwen3
use. Models that were not trained this way (the default SmolLM2) are told the
format in the prompt, and the ``<think>`` is pre-filled at the start of their turn,
so every completion begins inside the thinking section.

**Models that think natively.** A chat template that knows the thinking section is
respected rather than taught (``thinks_natively``). The rule, read from the template
itself and never from the model's name:

1. its source names ``enable_thinking`` (a hybrid template, Qwen3's and SmolLM3's:
   the switch exists, so the model was trained to think in its own tags), or
2. its generation prompt, rendered for a probe message with the run's template
   options, writes the open tag itself (DeepSeek-R1 distills and QwQ end it with
   ``<think>\\n``; Qwen3 with ``enable_thinking=false`` with ``<think>\\n\\n</think>\\n\\n``).

A template that merely mentions ``<think>`` (to strip old reasoning from history, as
Qwen3-Instruct-2507's does) is not enough: such models answer without thinking. For a
native model the task's think-format sentence ("Think step by step between <think> and
</think>. After </think>, ...") is dropped from the user message and only its answer
format is kept ("Write the final answer as a number inside \\boxed{}.":
``answer_format``): the model uses its own tags, and they are the protocol's (both
families write ``<think>``/``</think>``), so budget forcing caps and extends its own
thinking. The ``<think>`` is pre-filled only where the template did not already open
the section, so it is never doubled.

**Thinking closed by the template.** With ``enable_thinking=false`` Qwen3's template
writes an empty, closed section at the end of the prompt (``closed_in_prompt``). The
model then has no thinking to cap: nothing is pre-filled, generation starts in the
answer (``rlcot.generation.forcing`` starts such a sequence there, with no cue forced
and the answer bounded by ``max_answer_tokens``), every budget gives the same trace
(0 thinking tokens, as at budget 0), and ``prefilled_opening`` returns the whole empty
section so a completion splits into an empty thought and its answer.

**Template options.** ``chat_template_kwargs`` (``--chat-template-kwarg KEY=VALUE``, a
recipe's ``thinking.chat_template_kwargs``) go to ``tokenizer.apply_chat_template``.
They are part of the protocol, so traces record them and ``rlcot score`` and sweeps of a
trained run rebuild the same prompts. ``to_dict`` leaves them out while empty, so the
keys of stores written before they existed still match.

Splitting a completion into thinking and answer sections (``split_completion``,
``Sections``, ``OPEN``/``CLOSE``) is defined, with its rules, in ``rlcot.verifiers.sections``
and re-exported here: verifiers are the ground floor and must read answers the same
way without importing ``rlcot``. A protocol only chooses the tags it splits on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from rlcot.verifiers.sections import CLOSE, OPEN, Sections, split_completion

# The think-format part of every built-in task's instruction; a native model is not told it.
THINK_FORMAT = "Think step by step between <think> and </think>. "
AFTER_CLOSE = "After </think>, "
# No placeholder inside the box: the default model copies "\boxed{answer}" verbatim.
DEFAULT_INSTRUCTION = THINK_FORMAT + AFTER_CLOSE + "write the final answer as a number inside \\boxed{}."

PROBE = "rlcot-probe-question"  # a user message whose rendering shows what the generation prompt adds
# apply_chat_template's own parameters: a template option of one of these names would change the call, not the template
RESERVED_KWARGS = frozenset({"conversation", "messages", "tools", "documents", "chat_template", "add_generation_prompt",
                             "continue_final_message", "tokenize", "padding", "truncation", "max_length",
                             "return_tensors", "return_dict", "return_assistant_tokens_mask", "tokenizer_kwargs"})


@dataclass(frozen=True)
class ThinkingProtocol:
    """How prompts ask for thinking and which strings delimit it.

    ``instruct``: add ``instruction`` to the user message (for a native model, only its
    answer format). ``prefill``: open the assistant turn with ``open_tag`` so the
    completion starts inside the thinking section (never where the template opened or
    closed it). ``system``: the system message (None: the template's own).
    ``chat_template_kwargs``: options for the chat template (``enable_thinking``).
    """

    open_tag: str = OPEN
    close_tag: str = CLOSE
    instruct: bool = True
    prefill: bool = True
    instruction: str = DEFAULT_INSTRUCTION
    system: str | None = None
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self):
        check_template_kwargs(self.chat_template_kwargs)

    def to_dict(self) -> dict:
        """What traces and store keys record: every field, ``chat_template_kwargs`` only when set."""
        values = asdict(self)
        if not values["chat_template_kwargs"]:
            del values["chat_template_kwargs"]  # the keys of stores written before the field stay the same
        return values

    @classmethod
    def from_dict(cls, values) -> "ThinkingProtocol":
        """The protocol a trace or run info recorded (``to_dict``); a ValueError names a key it never had."""
        if not isinstance(values, dict):
            raise ValueError(f"the recorded protocol {values!r} is not a mapping; fix the run info or pass --task")
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"the recorded protocol has unknown field(s) {', '.join(unknown)}; it was written by "
                             "another version of rlcot: upgrade, or delete the run info and pass --task")
        return cls(**values)

    @property
    def forced_close(self) -> str:
        """What budget forcing appends to end a capped thought: the delimiter on its own line."""
        return f"\n{self.close_tag}\n\n"

    def user_message(self, question: str, native: bool = False) -> str:
        if not self.instruct:
            return question
        instruction = answer_format(self.instruction) if native else self.instruction
        return f"{question}\n\n{instruction}" if instruction else question

    def messages(self, content: str) -> list[dict]:
        messages = [{"role": "user", "content": content}]
        if self.system is not None:
            messages.insert(0, {"role": "system", "content": self.system})
        return messages

    def build_prompt(self, tokenizer, question: str) -> str:
        """The prompt text: chat template, generation prompt, and the pre-filled ``<think>``."""
        if getattr(tokenizer, "chat_template", None):
            native = thinks_natively(tokenizer, self)
            text = render(tokenizer, self.messages(self.user_message(question, native)), self.chat_template_kwargs)
        else:  # base models: a plain transcript
            messages = self.messages(self.user_message(question))
            text = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages) + "Assistant: "
        if self.prefill and not self.opened_in_prompt(text) and not self.closed_in_prompt(text):
            text += f"{self.open_tag}\n"
        return text

    def opened_in_prompt(self, prompt: str) -> bool:
        """The prompt ends inside an open thinking section (pre-filled, or opened by the template)."""
        return prompt.rstrip().endswith(self.open_tag)

    def closed_in_prompt(self, prompt: str) -> bool:
        """The prompt ends with a whole thinking section the template wrote and closed (``enable_thinking=false``)."""
        start = prompt.rfind(self.open_tag)
        tail = prompt[start + len(self.open_tag) :].rstrip()
        return start >= 0 and tail.endswith(self.close_tag) and tail.count(self.close_tag) == 1 \
            and self.open_tag not in tail

    def prefilled_opening(self, prompt: str) -> str:
        """The part of the assistant turn the prompt already wrote (``"<think>\\n"``), or ``""``.

        A completion sampled after this prompt starts inside the thinking section, or,
        where the template closed it, in the answer; put this back in front of it before
        splitting (TRL hands reward functions the completion without it).
        """
        if self.opened_in_prompt(prompt) or self.closed_in_prompt(prompt):
            return prompt[prompt.rfind(self.open_tag) :]
        return ""

    def split(self, completion: str) -> Sections:
        return split_completion(completion, self.open_tag, self.close_tag)


def answer_format(instruction: str) -> str:
    """``instruction`` without the think-format part a native model is not told (module docstring).

    "Think step by step between <think> and </think>. After </think>, write the final
    answer as a number inside \\boxed{}." becomes "Write the final answer as a number
    inside \\boxed{}."; an instruction of the user's own, without that part, is kept whole.
    """
    rest = instruction[len(THINK_FORMAT) :] if instruction.startswith(THINK_FORMAT) else instruction
    if rest.startswith(AFTER_CLOSE) and len(rest) > len(AFTER_CLOSE):
        rest = rest[len(AFTER_CLOSE)].upper() + rest[len(AFTER_CLOSE) + 1 :]
    return rest


def thinks_natively(tokenizer, protocol: ThinkingProtocol) -> bool:
    """Whether the tokenizer's chat template knows the thinking section (the rule in the module docstring)."""
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        return False
    source = template if isinstance(template, str) else " ".join(map(str, dict(template).values()))
    if "enable_thinking" in source:
        return True
    text = render(tokenizer, protocol.messages(PROBE), protocol.chat_template_kwargs)
    return protocol.open_tag in text[text.rfind(PROBE) + len(PROBE) :]


def render(tokenizer, messages: list[dict], options: dict) -> str:
    """``apply_chat_template`` with the generation prompt; a template that refuses the messages is a ValueError."""
    from jinja2 import TemplateError

    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **options)
    except TemplateError as err:  # Gemma's template raises on a system message
        roles = "+".join(m["role"] for m in messages)
        raise ValueError(f"the model's chat template refuses a {roles} conversation ({err}); for a template "
                         "without a system role leave the system prompt out (no --system-prompt, "
                         "thinking.system_prompt: null)") from None


def check_template_kwargs(options) -> None:
    """ValueError naming an option that cannot reach the template: no mapping, a bad name, a value JSON cannot hold."""
    if not isinstance(options, dict):
        raise ValueError(f"chat_template_kwargs {options!r} is not a mapping; e.g. {{enable_thinking: false}} "
                         "or --chat-template-kwarg enable_thinking=false")
    for key, value in options.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"chat template option {key!r} is not a template variable name; e.g. "
                             "--chat-template-kwarg enable_thinking=false")
        if key in RESERVED_KWARGS:
            raise ValueError(f"chat template option {key!r} is a parameter of apply_chat_template itself, not a "
                             "template variable; drop it")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise ValueError(f"chat template option {key}={value!r} is not a JSON value; give a string, number, "
                             "true/false, list or mapping") from None

