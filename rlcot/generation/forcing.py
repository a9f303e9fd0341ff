"""The per-sequence budget-forcing rules, shared by every backend.

A backend samples tokens; after each one it calls ``ForcingRules.advance``, which
applies the rules of ``rlcot.generation.budget`` to that sequence's ``SequenceState``:

    thinking --(model closes)--> answer --(EOS | cue braces balance | length)--> done
        |--(cap reached)--> delimiter + cue forced --> answer
        |--(closes before the minimum)--> delimiter taken back, "Wait" forced
        '--(EOS)--> EOS taken back, delimiter + cue forced --> answer
                    (or done with no answer section, if answer_after_eos is off)

A prompt whose chat template already closed the thinking section (Qwen3 with
``enable_thinking=false``: ``ThinkingProtocol.closed_in_prompt``) starts in ``answer``.

Forced tokens are appended to the state at once, marked ``forced`` with logprob
None; a backend feeds whatever the model has not seen yet. Taking tokens back (an
early delimiter, an EOS inside thinking) records the first index removed in
``taken_back_from``, so a backend holding a KV cache can drop those entries. Keeping
these rules in one place is what makes a trace mean the same thing from either
backend: the hf backend applies them every step, the vLLM one replays each round's
tokens through them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..thinking import ThinkingProtocol
from .base import GenerationRequest, Trace
from .budget import answer_complete

DELIMITER_WINDOW = 16  # tokens decoded to look for the closing delimiter; no tokenizer splits it finer


@dataclass
class SequenceState:
    index: int  # position in the caller's request list
    request: GenerationRequest
    cue_ids: list[int]
    cap: int | None  # this sequence's thinking cap
    ids: list[int] = field(default_factory=list)
    forced: list[bool] = field(default_factory=list)
    logprobs: list[float | None] = field(default_factory=list)
    thinking: bool = True
    thinking_end: int = 0
    thinking_tokens: int = 0
    answer_tokens: int = 0
    extensions: int = 0
    capped: bool = False
    eos_in_thinking: bool = False
    finish: str | None = None
    taken_back_from: int | None = None  # set when tokens are removed; the backend resets it

    @property
    def cue_forced(self) -> bool:
        return self.capped or self.eos_in_thinking

    @property
    def thinking_ended_by(self) -> str:
        return "capped" if self.capped else "eos" if self.eos_in_thinking else "closed"

    def append(self, token: int, logprob: float | None = None, forced: bool = False) -> None:
        self.ids.append(int(token))
        self.forced.append(forced)
        self.logprobs.append(None if forced or logprob is None else float(logprob))

    def take_back(self, start: int) -> None:
        """Remove tokens from ``start`` on; the model's own ones stop counting as thinking."""
        self.thinking_tokens -= sum(not forced for forced in self.forced[start:])
        del self.ids[start:], self.forced[start:], self.logprobs[start:]
        self.taken_back_from = start if self.taken_back_from is None else min(start, self.taken_back_from)

    def cut(self, bound: int) -> None:
        """Stop at ``bound`` completion tokens (``SamplingConfig.max_tokens``)."""
        del self.ids[bound:], self.forced[bound:], self.logprobs[bound:]
        self.finish = "length"


class ForcingRules:
    def __init__(self, tokenizer, protocol: ThinkingProtocol, eos_ids: Sequence[int]):
        self.tokenizer = tokenizer
        self.protocol = protocol
        self.eos_ids = frozenset(eos_ids)
        self.close_ids = self.encode(protocol.forced_close)
        # A token can only complete the delimiter if its text has the delimiter's last
        # character; the tail is decoded only after those.
        self.may_close = tokens_containing(tokenizer, protocol.close_tag[-1])

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False) if text else []

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def start(self, index: int, request: GenerationRequest, cap: int | None, state_type=SequenceState):
        """A new sequence (of ``state_type``, a backend's subclass); resumed thinking counts
        as if the model had just sampled it."""
        state = state_type(index=index, request=request, cue_ids=self.encode(request.answer_cue), cap=cap)
        if self.protocol.closed_in_prompt(request.prompt):  # the template closed thinking (enable_thinking=false)
            if request.resume_ids:
                raise ValueError(f"request {request.request_id!r} resumes thinking tokens, but its prompt closed "
                                 "the thinking section (enable_thinking=false); drop resume_ids")
            state.thinking = False  # nothing to cap: the model writes its answer, as at budget 0 without the cue
            return state
        logprobs = list(request.resume_logprobs) or [None] * len(request.resume_ids)
        for token, logprob in zip(request.resume_ids, logprobs):
            state.append(token, logprob)
            state.thinking_tokens += 1
        self.maybe_cap(state)
        return state

    def advance(self, state: SequenceState, budget, eos: bool) -> bool:
        """Apply the rules after the model sampled ``state.ids[-1]``; True if one fired."""
        if state.thinking:
            return self._advance_thinking(state, budget, eos)
        state.answer_tokens += 1
        if eos or (state.cue_forced and self._answer_complete(state)):
            state.finish = state.thinking_ended_by
        elif state.answer_tokens >= budget.max_answer_tokens:
            state.finish = "length"
        return state.finish is not None

    def _advance_thinking(self, state: SequenceState, budget, eos: bool) -> bool:
        state.thinking_tokens += 1
        if eos:
            self._end_thinking_at_eos(state, budget)
            return True
        if state.ids[-1] in self.may_close and self._closes(state):
            if state.thinking_tokens < budget.min_thinking_tokens and state.extensions < budget.max_extensions:
                self._extend(state, budget)
            else:
                state.thinking = False
                state.thinking_end = len(state.ids)
            return True
        return self.maybe_cap(state)

    def maybe_cap(self, state: SequenceState) -> bool:
        if state.cap is None or state.thinking_tokens < state.cap or not state.thinking:
            return False
        state.thinking = False
        state.capped = True
        self._force_close(state)
        return True

    def _force_close(self, state: SequenceState) -> None:
        state.thinking_end = len(state.ids) + len(self.close_ids)
        for token in self.close_ids + state.cue_ids:
            state.append(token, forced=True)

    def _end_thinking_at_eos(self, state: SequenceState, budget) -> None:
        """The model ended its turn inside thinking (models not trained to think do)."""
        state.thinking = False
        state.eos_in_thinking = True
        if not budget.answer_after_eos:
            state.thinking_end = len(state.ids)
            state.finish = "eos"
            return
        state.take_back(len(state.ids) - 1)  # the EOS; the delimiter and cue go in its place
        self._force_close(state)

    def _closes(self, state: SequenceState) -> bool:
        return self.protocol.close_tag in self.decode(state.ids[-DELIMITER_WINDOW:])

    def _extend(self, state: SequenceState, budget) -> None:
        """s1's extension: take the delimiter back and force the extension text in its place."""
        close = self.protocol.close_tag
        start = len(state.ids) - 1
        while close not in self.decode(state.ids[start:]):  # the token where the delimiter begins
            start -= 1
        text = self.decode(state.ids[start:])
        kept_text = text[: text.index(close)]  # text that shared a token with the delimiter
        state.take_back(start)
        state.extensions += 1
        for token in self.encode(kept_text + budget.extension):
            state.append(token, forced=True)

    def _answer_complete(self, state: SequenceState) -> bool:
        return answer_complete(self.decode(state.ids[state.thinking_end :]), state.request.answer_cue)

    def to_trace(self, state: SequenceState) -> Trace:
        return make_trace(
            self.protocol,
            self.decode,
            state.request,
            completion_ids=state.ids,
            forced=state.forced,
            logprobs=state.logprobs,
            thinking_end=len(state.ids) if state.thinking else state.thinking_end,
            thinking_tokens=state.thinking_tokens,
            answer_tokens=state.answer_tokens,
            finish_reason=state.finish or "length",
            capped=state.capped,
            budget=state.cap,
            extensions=state.extensions,
        )


def make_trace(protocol: ThinkingProtocol, decode: Callable, request: GenerationRequest, **fields) -> Trace:
    """Assemble a Trace; the completion text starts at the prompt's pre-filled ``<think>``."""
    prompt = request.prompt
    completion = protocol.prefilled_opening(prompt) + decode(fields["completion_ids"])
    sections = protocol.split(completion)
    return Trace(
        request_id=request.request_id,
        sample=request.sample,
        prompt=prompt,
        prompt_ids=list(request.prompt_ids),
        completion=completion,
        thinking=sections.thinking,
        answer=sections.answer,
        seed=request.seed,
        **fields,
    )


def eos_ids(tokenizer, generation_config=None) -> list[int]:
    """EOS ids from the model's generation config (if any) and the tokenizer, config first."""
    declared = getattr(generation_config, "eos_token_id", None)
    ids = [declared] if isinstance(declared, int) else list(declared or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("the model and its tokenizer declare no EOS token; set tokenizer.eos_token")
    return ids


def tokens_containing(tokenizer, char: str) -> frozenset[int]:
    """Ids whose piece contains ``char``."""
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return frozenset(i for i, piece in enumerate(pieces) if piece is not None and char in piece)


def check_request(request: GenerationRequest, budget) -> None:
    if not request.prompt_ids:
        raise ValueError(f"request {request.request_id!r} has an empty prompt; every request needs prompt tokens")
    if request.resume_logprobs and len(request.resume_logprobs) != len(request.resume_ids):
        raise ValueError(
            f"request {request.request_id!r}: {len(request.resume_ids)} resume_ids but "
            f"{len(request.resume_logprobs)} resume_logprobs; pass one logprob per token or none"
        )
    cap = budget.max_thinking_tokens
    if cap is not None and len(request.resume_ids) > cap:
        raise ValueError(
            f"request {request.request_id!r} resumes {len(request.resume_ids)} thinking tokens, over the cap {cap}"
        )
