"""The thinking protocol: how a prompt asks for thinking, and how a completion splits.

The assistant turn opens with ``<think>``; the model thinks, closes with ``</think>``
and then answers (math answers in ``\\boxed{}``), the format DeepSeek-R1 and Qwen3
use. Models that were not trained this way (the default SmolLM2) are told the
format in the prompt, and the ``<think>`` is pre-filled at the start of their turn,
so every completion begins inside the thinking section. A chat template that already
opens the thinking section itself (R1-style templates) is detected and not doubled.

Splitting rules (``split_completion``), applied to the whole assistant turn:

1. No ``<think>`` and no ``</think>``: the whole text is the answer section.
2. A ``<think>``: thinking runs from just after the first ``<think>`` to the first
   ``</think>`` after it; the answer section is everything after that ``</think>``.
   With no ``</think>`` after it, the thinking never closed: there is no answer
   section (``answer is None``), however answer-like the thinking looks.
3. A ``</think>`` with no ``<think>`` before it closes a thinking section that the
   prompt opened: thinking is the text before it, the answer the text after.

Text before the first ``<think>`` belongs to neither section.
"""

from __future__ import annotations

from dataclasses import dataclass

OPEN = "<think>"
CLOSE = "</think>"

# No placeholder inside the box: the default model copies "\boxed{answer}" verbatim.
DEFAULT_INSTRUCTION = (
    "Think step by step between <think> and </think>. "
    "After </think>, write the final answer as a number inside \\boxed{}."
)


@dataclass(frozen=True)
class Sections:
    thinking: str
    answer: str | None  # None: the thinking never closed, so there is no answer section

    @property
    def closed(self) -> bool:
        return self.answer is not None


def split_completion(text: str, open_tag: str = OPEN, close_tag: str = CLOSE) -> Sections:
    """Split a whole assistant turn into thinking and answer sections (rules above)."""
    start = text.find(open_tag)
    if start < 0:
        end = text.find(close_tag)
        if end < 0:
            return Sections(thinking="", answer=text)
        return Sections(thinking=text[:end], answer=text[end + len(close_tag) :])
    body = start + len(open_tag)
    end = text.find(close_tag, body)
    if end < 0:
        return Sections(thinking=text[body:], answer=None)
    return Sections(thinking=text[body:end], answer=text[end + len(close_tag) :])


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

    def split(self, completion: str) -> Sections:
        return split_completion(completion, self.open_tag, self.close_tag)
