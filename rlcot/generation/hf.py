"""The transformers backend: batched, budget-forced decoding on CPU or GPU.

Why not ``model.generate``: budget forcing needs per-sequence control in the middle
of a batch (append forced tokens to one row, take back another row's delimiter,
stop a third on a balanced brace), which its logits processors and stopping
criteria cannot express without re-running the batch. So this module drives the
model's forward pass itself, with the same KV cache (``DynamicCache``), and keeps
one small state machine per row:

    thinking --(model closes)--> answer --(EOS | braces balance | length)--> done
        |--(cap reached)--> forced delimiter + cue --> answer
        |--(closes before the minimum)--> delimiter taken back, "Wait" forced
        '--(EOS)--> EOS taken back, delimiter + cue forced --> answer
                    (or done with no answer section, if answer_after_eos is off)

Each step feeds exactly one token per row (sampled or forced), so the batch stays in
lock-step. Details that matter for speed and exactness:

- Left padding; each row has its own position ids (count of its real tokens), so a
  row's numbers do not depend on its neighbours' lengths.
- Taking back a delimiter masks its cache columns instead of cutting the cache, so
  the other rows are untouched; a masked column is invisible to attention.
- Finished rows leave the batch at once (``batch_select_indices``) rather than
  being carried as padding, as ``model.generate`` does.
- Only the last position's logits are computed (``logits_to_keep=1``): the LM head
  over a whole prompt costs as much as several decode steps.
- Each sampled token comes from one uniform draw seeded by (seed, position),
  turned into a token by inverse-CDF search, so a sequence samples the same tokens
  whatever batch it is in, and a probed trace equals a fresh capped run.
- Logprobs are of the temperature-scaled distribution before top-p (what TRL's
  GRPO recomputes); under greedy decoding, of the raw distribution.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import Sequence

import torch
from transformers import DynamicCache

from ..thinking import ThinkingProtocol
from .base import GenerationRequest, ProgressCallback, SamplingConfig, Trace

_DELIMITER_WINDOW = 16  # tokens decoded to look for the closing delimiter; no tokenizer splits it finer


@dataclass
class _Row:
    index: int  # position in the caller's request list
    request: GenerationRequest
    cue_ids: list[int]
    ids: list[int] = field(default_factory=list)
    forced: list[bool] = field(default_factory=list)
    logprobs: list[float | None] = field(default_factory=list)
    columns: list[int] = field(default_factory=list)  # cache column of each fed completion token
    pending: deque = field(default_factory=deque)  # forced tokens still to feed
    thinking: bool = True
    thinking_end: int = 0
    thinking_tokens: int = 0
    answer_tokens: int = 0
    extensions: int = 0
    capped: bool = False
    eos_in_thinking: bool = False
    finish: str | None = None
    position: int = 0  # position id of the next token fed
    cap: int | None = None  # this row's thinking cap (a fork's is smaller than its parent's)
    fork_due: bool = False  # reached a sweep budget while thinking: spawn a capped copy

    @property
    def cue_forced(self) -> bool:
        return self.capped or self.eos_in_thinking


class HFGenerator:
    """Budget-forced generation with a transformers causal LM."""

    def __init__(self, model, tokenizer, protocol: ThinkingProtocol | None = None, batch_size: int = 64):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        self.model = model
        self.tokenizer = tokenizer
        self.protocol = protocol or ThinkingProtocol()
        self.batch_size = batch_size
        self.device = next(model.parameters()).device
        self.eos_ids = _eos_ids(model, tokenizer)
        self.close_ids = self.encode(self.protocol.forced_close)
        vocab = len(tokenizer)
        # A token can only complete the delimiter if its text has the delimiter's last
        # character; decoding is done only for those.
        last = self.protocol.close_tag[-1]
        self._may_close = torch.zeros(max(vocab, model.config.vocab_size), dtype=torch.bool)
        pieces = tokenizer.convert_ids_to_tokens(list(range(vocab)))
        for token_id, piece in enumerate(pieces):
            if piece is not None and last in piece:
                self._may_close[token_id] = True
        self._may_close = self._may_close.tolist()

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False) if text else []

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    # ------------------------------------------------------------------ public

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        sampling: SamplingConfig,
        budget,
        progress: ProgressCallback | None = None,
    ) -> list[Trace]:
        return self._generate(requests, sampling, budget, progress, fork_at=())[budget.max_thinking_tokens]

    def sweep(
        self,
        requests: Sequence[GenerationRequest],
        sampling: SamplingConfig,
        budget,
        budgets: Sequence[int],
        progress: ProgressCallback | None = None,
    ) -> dict[int, list[Trace]]:
        """Traces under every cap in ``budgets`` (all below ``budget``'s), in one run at the top cap.

        A row that reaches a smaller budget while still thinking forks: the copy takes
        a duplicate of the row's KV cache, is capped there and decodes its answer in the
        same batch. Nothing is recomputed, so the sweep costs one run plus ~20 tokens a
        fork. A row that finished thinking earlier serves every budget it fits under.
        """
        return self._generate(requests, sampling, budget, progress, fork_at=tuple(budgets))

    @torch.inference_mode()
    def _generate(self, requests, sampling, budget, progress, fork_at) -> dict[int | None, list[Trace]]:
        for request in requests:
            _check_request(request, budget)
        self._fork_at = frozenset(fork_at)
        # Similar lengths share a batch: less padding in the prefill and the cache.
        order = sorted(range(len(requests)), key=lambda i: -(len(requests[i].prompt_ids) + len(requests[i].resume_ids)))
        top = budget.max_thinking_tokens
        out: dict[int | None, list] = {cap: [None] * len(requests) for cap in (top, *fork_at)}
        for start in range(0, len(order), self.batch_size):
            rows = [self._new_row(i, requests[i], top) for i in order[start : start + self.batch_size]]
            for row in self._run_batch(rows, sampling, budget, progress):
                out[row.cap][row.index] = self._to_trace(row)
        from ..budget import reusable_at

        for cap in fork_at:  # rows that finished thinking before reaching this budget
            for i, trace in enumerate(out[cap]):
                if trace is None:
                    parent = out[top][i]
                    if not reusable_at(parent, cap):
                        raise RuntimeError(f"no trace for budget {cap} of request {i}: a fork was missed")
                    out[cap][i] = replace(parent, budget=cap)
        return out

    # --------------------------------------------------------------- the loop

    def _new_row(self, index: int, request: GenerationRequest, cap: int | None) -> _Row:
        return _Row(index=index, request=request, cue_ids=self.encode(request.answer_cue), cap=cap)

    def _fork(self, row: _Row, cap: int) -> _Row:
        """A copy of a thinking row, capped at ``cap`` (its thinking token count now)."""
        child = _Row(
            index=row.index, request=row.request, cue_ids=row.cue_ids, ids=list(row.ids), forced=list(row.forced),
            logprobs=list(row.logprobs), columns=list(row.columns), thinking_tokens=row.thinking_tokens,
            extensions=row.extensions, position=row.position, cap=cap,
        )
        self._maybe_cap(child)
        return child

    def _run_batch(self, rows: list[_Row], sampling: SamplingConfig, budget, progress) -> list[_Row]:
        finished: list[_Row] = []
        cache, mask, logits = self._prefill(rows)
        active = rows
        # A sweep budget no larger than the resumed thinking (budget 0): fork before the first token.
        forks = [(r, self._fork(row, row.thinking_tokens)) for r, row in enumerate(rows)
                 if row.thinking and row.thinking_tokens in self._fork_at]
        if forks:
            index = torch.tensor(list(range(len(rows))) + [r for r, _ in forks], device=self.device)
            cache.batch_select_indices(index)
            mask, logits = mask[index], logits[index]
            active = rows + [child for _, child in forks]
        while active:
            tokens, logprobs = self._choose(active, logits, sampling)
            keep: list[int] = []
            forks: list[tuple[int, _Row]] = []
            for r, row in enumerate(active):
                if row.pending:
                    self._append(row, row.pending.popleft(), forced=True, logprob=None)
                else:
                    self._append(row, tokens[r], forced=False, logprob=logprobs[r])
                    self._advance(row, budget, mask, r)
                if row.finish is None and len(row.ids) >= sampling.max_tokens:
                    row.finish = "length"
                if row.finish is None:
                    keep.append(r)
                    if row.fork_due:
                        row.fork_due = False
                        forks.append((r, self._fork(row, row.thinking_tokens)))
                else:
                    finished.append(row)
            if progress and len(keep) < len(active):
                progress(len(active) - len(keep))
            if not keep:
                break
            if len(keep) < len(active) or forks:
                # one gather: drop finished rows, duplicate the cache rows of forked ones
                index = torch.tensor(keep + [r for r, _ in forks], device=self.device)
                cache.batch_select_indices(index)
                mask = mask[index]
                active = [active[r] for r in keep] + [child for _, child in forks]
            logits, mask = self._step(active, cache, mask)
        return finished

    def _prefill(self, rows: list[_Row]):
        """One forward over prompt + resumed thinking (+ forced tokens, if already at the cap)."""
        for row in rows:
            self._replay_resume(row)
            # A row that starts at its cap (probing, or a cap of 0) has its delimiter and
            # cue decided already: prefill them instead of feeding one per step.
            while row.pending:
                self._append(row, row.pending.popleft(), forced=True, logprob=None)
        inputs = [row.request.prompt_ids + row.ids for row in rows]
        width = max(len(x) for x in inputs)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (row, seq) in enumerate(zip(rows, inputs)):
            input_ids[r, width - len(seq) :] = torch.tensor(seq)
            mask[r, width - len(seq) :] = 1
            row.position = len(seq)
            row.columns = list(range(width - len(row.ids), width))
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        out = self.model(
            input_ids=input_ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.past_key_values, mask.to(self.device), out.logits[:, -1, :].float()

    def _replay_resume(self, row: _Row) -> None:
        """Account for resumed thinking tokens as if the model had just sampled them."""
        request = row.request
        logprobs = list(request.resume_logprobs) or [None] * len(request.resume_ids)
        for token, logprob in zip(request.resume_ids, logprobs):
            self._append(row, token, forced=False, logprob=logprob)
            row.thinking_tokens += 1
        self._maybe_cap(row)

    def _step(self, active: list[_Row], cache, mask):
        """Feed each row's newest token; return next-token logits and the grown mask."""
        input_ids = torch.tensor([[row.ids[-1]] for row in active], device=self.device)
        positions = torch.tensor([[row.position] for row in active], device=self.device)
        column = mask.shape[1]
        for row in active:
            row.columns.append(column)
            row.position += 1
        mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
        out = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1, :].float(), mask

    # ------------------------------------------------------------ per row

    def _choose(self, active: list[_Row], logits: torch.Tensor, sampling: SamplingConfig):
        """A sampled token and its logprob for every row (forced rows ignore theirs)."""
        if sampling.greedy:
            tokens = logits.argmax(-1)
            logprobs = torch.log_softmax(logits, -1).gather(-1, tokens[:, None])[:, 0]
            return tokens.tolist(), logprobs.tolist()
        logp = torch.log_softmax(logits / sampling.temperature, -1)
        probs = logp.exp()
        if sampling.top_p < 1:
            probs = _top_p(probs, sampling.top_p)
        # Inverse-CDF sampling: one seeded uniform per row, the search batched.
        # (Per-row torch.multinomial costs ~1.5 ms a row at this vocabulary size.)
        cdf = probs.double().cumsum(-1)
        uniforms = torch.tensor([_uniform(row.request.seed, len(row.ids)) for row in active], dtype=torch.float64)
        targets = (uniforms.to(cdf.device) * cdf[:, -1])[:, None]
        tokens = torch.searchsorted(cdf, targets, right=True)[:, 0].clamp(max=probs.shape[-1] - 1)
        return tokens.tolist(), logp.gather(-1, tokens[:, None])[:, 0].tolist()

    @staticmethod
    def _append(row: _Row, token: int, forced: bool, logprob) -> None:
        row.ids.append(int(token))
        row.forced.append(forced)
        row.logprobs.append(None if forced or logprob is None else float(logprob))

    def _advance(self, row: _Row, budget, mask, r: int) -> None:
        """Apply the forcing rules after the model sampled ``row.ids[-1]``."""
        token = row.ids[-1]
        if row.thinking:
            row.thinking_tokens += 1
            if token in self.eos_ids:
                self._end_thinking_at_eos(row, budget)
            elif self._may_close[token] and self._closes(row):
                if row.thinking_tokens < budget.min_thinking_tokens and row.extensions < budget.max_extensions:
                    self._extend(row, budget, mask, r)
                else:
                    row.thinking = False
                    row.thinking_end = len(row.ids)
            else:
                self._maybe_cap(row)
                row.fork_due = row.thinking and row.thinking_tokens in self._fork_at
            return
        row.answer_tokens += 1
        if token in self.eos_ids:
            row.finish = self._thinking_ended_by(row)
        elif row.cue_forced and self._answer_complete(row):
            row.finish = self._thinking_ended_by(row)
        elif row.answer_tokens >= budget.max_answer_tokens:
            row.finish = "length"

    def _maybe_cap(self, row: _Row) -> None:
        cap = row.cap
        if cap is not None and row.thinking_tokens >= cap and row.thinking:
            row.thinking = False
            row.capped = True
            row.thinking_end = len(row.ids) + len(self.close_ids)
            row.pending.extend(self.close_ids + row.cue_ids)

    def _end_thinking_at_eos(self, row: _Row, budget) -> None:
        """The model ended its turn inside thinking (models not trained to think do)."""
        row.thinking = False
        row.eos_in_thinking = True
        if not budget.answer_after_eos:
            row.thinking_end = len(row.ids)
            row.finish = "eos"
            return
        # Take the EOS back (it was never fed) and force the delimiter and cue in its place.
        row.ids.pop(), row.forced.pop(), row.logprobs.pop()
        row.thinking_tokens -= 1
        row.thinking_end = len(row.ids) + len(self.close_ids)
        forced = self.close_ids + row.cue_ids
        self._append(row, forced[0], forced=True, logprob=None)
        row.pending.extend(forced[1:])

    def _closes(self, row: _Row) -> bool:
        tail = row.ids[-_DELIMITER_WINDOW:]
        return self.protocol.close_tag in self.decode(tail)

    def _extend(self, row: _Row, budget, mask, r: int) -> None:
        """s1's extension: take the delimiter back and force "Wait" in its place."""
        close = self.protocol.close_tag
        start = len(row.ids) - 1
        while close not in self.decode(row.ids[start:]):  # the token where the delimiter begins
            start -= 1
        text = self.decode(row.ids[start:])
        kept_text = text[: text.index(close)]  # text that shared a token with the delimiter
        removed = range(start, len(row.ids))
        fed = len(row.columns)
        for j in removed:
            if j < fed:
                mask[r, row.columns[j]] = 0
            if not row.forced[j]:
                row.thinking_tokens -= 1
        row.position -= fed - start  # the newest token was never fed
        del row.ids[start:], row.forced[start:], row.logprobs[start:], row.columns[start:]
        row.extensions += 1
        forced = self.encode(kept_text + budget.extension)
        row.ids.append(forced[0])
        row.forced.append(True)
        row.logprobs.append(None)
        row.pending.extend(forced[1:])

    @staticmethod
    def _thinking_ended_by(row: _Row) -> str:
        return "capped" if row.capped else "eos" if row.eos_in_thinking else "closed"

    def _answer_complete(self, row: _Row) -> bool:
        from ..budget import answer_complete

        return answer_complete(self.decode(row.ids[row.thinking_end :]), row.request.answer_cue)

    # ------------------------------------------------------------- output

    def _to_trace(self, row: _Row) -> Trace:
        return make_trace(
            self.protocol,
            self.decode,
            row.request,
            completion_ids=row.ids,
            forced=row.forced,
            logprobs=row.logprobs,
            thinking_end=row.thinking_end if not row.thinking else len(row.ids),
            thinking_tokens=row.thinking_tokens,
            answer_tokens=row.answer_tokens,
            finish_reason=row.finish or "length",
            capped=row.capped,
            budget=row.cap,
            extensions=row.extensions,
        )


def make_trace(protocol: ThinkingProtocol, decode, request: GenerationRequest, **fields) -> Trace:
    """Assemble a Trace; the completion text starts at the prompt's pre-filled ``<think>``."""
    prompt = request.prompt
    opened = prompt.rfind(protocol.open_tag) if protocol.opened_in_prompt(prompt) else -1
    prefix = prompt[opened:] if opened >= 0 else ""
    completion = prefix + decode(fields["completion_ids"])
    sections = protocol.split(completion)
    return Trace(
        request_id=request.request_id,
        prompt=prompt,
        prompt_ids=list(request.prompt_ids),
        completion=completion,
        thinking=sections.thinking,
        answer=sections.answer,
        seed=request.seed,
        **fields,
    )


_UNIFORMS = torch.Generator()


def _uniform(seed: int, position: int) -> float:
    """The uniform draw for the token at ``position``: fixed by (seed, position) alone,
    so a sequence samples the same tokens in any batch, and when resumed."""
    _UNIFORMS.manual_seed(seed * 2**20 + position)
    return float(torch.rand((), generator=_UNIFORMS, dtype=torch.float64))


def _top_p(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering (Holtzman et al. 2020): keep the smallest set with mass >= top_p."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    outside = sorted_probs.cumsum(-1) - sorted_probs >= top_p
    sorted_probs = sorted_probs.masked_fill(outside, 0.0)
    return torch.zeros_like(probs).scatter_(-1, order, sorted_probs)


def _eos_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id if model.generation_config is not None else None
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("the model and tokenizer declare no EOS token; set tokenizer.eos_token")
    return ids


def _check_request(request: GenerationRequest, budget) -> None:
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
