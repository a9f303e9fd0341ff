"""The thinking protocol: how a prompt asks for thinking, and how a completion splits.

The assistant turn opens with ``<think>``; the model thinks, closes with ``</think>``
and then answers (math answers in ``\\boxed{}``), the format DeepSeek-R1 and Qwen3
use. Models that were not trained this way (the default SmolLM2) are told the
format in the prompt, and the ``<think>`` is pre-filled at the start of their turn,
so every completion begins inside the thinking section. A chat template that already
opens the thinking section itself (R1-style templates) is detected and not doubled.

Splitting a completion into thinking and answer sections (``split_completion``,
``Sections``, ``OPEN``/``CLOSE``) is defined, with its rules, in ``rlcot.verifiers.sections``
and re-exported here: verifiers are the ground floor and must read answers the same
way without importing ``rlcot``. A protocol only chooses the tags it splits on.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlcot.verifiers.sections import CLOSE, OPEN, Sections, split_completion

# No placeholder inside the box: the default model copies "\boxed{answer}" verbatim.
DEFAULT_INSTRUCTION = (
    "Think step by step between <think> and </think>. "
    "After </think>, write the final answer as a number inside \\boxed{}."
)


@dataclass(frozen=True)
class ThinkingProtocol:
    """How prompts ask for thinking and which strings delimit it.

    ``instruct``: add ``instruction`` to the user message (for models not trained to
    think). ``prefill``: open the assistant turn with ``open_tag`` so the completion
    starts inside the thinking section.
    """

    open_tag: str = OPEN
    close_tag: str = CLOSE
    instruct: bool = True
    prefill: bool = True
    instruction: str = DEFAULT_INSTRUCTION
    system: str | None = None

    @property
    def forced_close(self) -> str:
        """What budget forcing appends to end a capped thought: the delimiter on its own line."""
        return f"\n{self.close_tag}\n\n"

    def user_message(self, question: str) -> str:
        return f"{question}\n\n{self.instruction}" if self.instruct else question

    def build_prompt(self, tokenizer, question: str) -> str:
        """The prompt text: chat template, generation prompt, and the pre-filled ``<think>``."""
        messages = [{"role": "user", "content": self.user_message(question)}]
        if self.system is not None:
            messages.insert(0, {"role": "system", "content": self.system})
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:  # base models: a plain transcript
            text = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages) + "Assistant: "
        if self.prefill and not self.opened_in_prompt(text):
            text += f"{self.open_tag}\n"
        return text

    def opened_in_prompt(self, prompt: str) -> bool:
        return prompt.rstrip().endswith(self.open_tag)

    def prefilled_opening(self, prompt: str) -> str:
        """The part of the assistant turn the prompt already wrote (``"<think>\\n"``), or ``""``.

        A completion sampled after this prompt starts inside the thinking section; put
        this back in front of it before splitting (TRL hands reward functions the
        completion without it).
        """
        return prompt[prompt.rfind(self.open_tag) :] if self.opened_in_prompt(prompt) else ""

    def split(self, completion: str) -> Sections:
        return split_completion(completion, self.open_tag, self.close_tag)
