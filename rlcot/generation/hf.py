"""The transformers backend: batched, budget-forced decoding on CPU or GPU.

Why not ``model.generate``: budget forcing needs per-sequence control in the middle
of a batch (append forced tokens to one row, take back another row's delimiter,
stop a third on a balanced brace, fork a fourth at a sweep budget), which its logits
processors and stopping criteria cannot express without re-running the batch. So
this module drives the model's forward pass itself, with the same KV cache
(``DynamicCache``), and applies the shared rules of ``forcing.ForcingRules`` to each
row after every sampled token.

Each step feeds exactly one token per row: the row's next unfed token, which is
either the one just sampled or the next forced one. Details that matter for speed
and exactness:

- Left padding; each row's position ids count its own real tokens, so a row's
  numbers do not depend on its neighbours' lengths.
- Taking tokens back masks their cache columns instead of cutting the cache, so the
  other rows are untouched; a masked column is invisible to attention.
- Finished rows leave the batch at once (``batch_select_indices``) rather than being
  carried as padding, as ``model.generate`` does. The same gather duplicates the
  cache row of a row forked at a sweep budget.
- Only the last position's logits are computed (``logits_to_keep=1``): the LM head
  over a whole prompt costs as much as several decode steps.
- A row that starts with forced tokens decided (probing at its cap, a cap of 0) has
  them prefilled, not fed one per step.
- Each sampled token comes from one uniform draw seeded by (seed, position), turned
  into a token by inverse-CDF search, so a sequence samples the same tokens whatever
  batch it is in, and a probed or forked trace equals a fresh capped run.
- Logprobs are of the temperature-scaled distribution before top-p (what TRL's GRPO
  recomputes); under greedy decoding, of the raw distribution.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import torch
from transformers import DynamicCache

from ..thinking import ThinkingProtocol
from .base import GenerationRequest, ProgressCallback, SamplingConfig, Trace
from .budget import reusable_at
from .forcing import ForcingRules, SequenceState, check_request, eos_ids


@dataclass
class _Row(SequenceState):
    columns: list[int] = field(default_factory=list)  # cache column of each fed completion token
    fork_due: bool = False  # reached a sweep budget while thinking: spawn a capped copy

    @property
    def unfed(self) -> int:
        return len(self.ids) - len(self.columns)


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
        self.eos_ids = eos_ids(tokenizer, getattr(model, "generation_config", None))
        self.rules = ForcingRules(tokenizer, self.protocol, self.eos_ids)

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

    # --------------------------------------------------------------- the loop

    @torch.inference_mode()
    def _generate(self, requests, sampling, budget, progress, fork_at) -> dict[int | None, list[Trace]]:
        for request in requests:
            check_request(request, budget)
        top = budget.max_thinking_tokens
        # Similar lengths share a batch: less padding in the prefill and the cache.
        order = sorted(range(len(requests)), key=lambda i: -(len(requests[i].prompt_ids) + len(requests[i].resume_ids)))
        out: dict[int | None, list] = {cap: [None] * len(requests) for cap in (top, *fork_at)}
        for start in range(0, len(order), self.batch_size):
            rows = [self._new_row(i, requests[i], top) for i in order[start : start + self.batch_size]]
            for row in self._run_batch(rows, sampling, budget, progress, frozenset(fork_at)):
                out[row.cap][row.index] = self.rules.to_trace(row)
        for cap in fork_at:  # rows that finished thinking before reaching this budget
            for i, trace in enumerate(out[cap]):
                if trace is None:
                    parent = out[top][i]
                    if not reusable_at(parent, cap):
                        raise RuntimeError(f"no trace for budget {cap} of request {i}: a fork was missed")
                    out[cap][i] = replace(parent, budget=cap)
        return out

    def _new_row(self, index: int, request: GenerationRequest, cap: int | None) -> _Row:
        return self.rules.start(index, request, cap, state_type=_Row)

    def _fork(self, row: _Row) -> _Row:
        """A copy of a thinking row, capped where it stands."""
        child = replace(row, ids=list(row.ids), forced=list(row.forced), logprobs=list(row.logprobs),
                        columns=list(row.columns), cap=row.thinking_tokens, fork_due=False)
        self.rules.maybe_cap(child)
        return child

    def _run_batch(self, rows: list[_Row], sampling: SamplingConfig, budget, progress, fork_at) -> list[_Row]:
        """Decode ``rows`` to the end; a row forks when its thinking reaches a budget in ``fork_at``."""
        finished: list[_Row] = []
        cache, mask, logits = self._prefill(rows)
        # A sweep budget no larger than the resumed thinking (budget 0): fork before the first token.
        active, forks = rows, [(r, self._fork(row)) for r, row in enumerate(rows) if _forks_here(row, fork_at)]
        if forks:
            index = torch.tensor(list(range(len(rows))) + [r for r, _ in forks], device=self.device)
            cache.batch_select_indices(index)
            mask, logits = mask[index], logits[index]
            active = rows + [child for _, child in forks]
        while active:
            tokens, logprobs = self._choose(active, logits, sampling)
            keep, forks = [], []
            for r, row in enumerate(active):
                if row.unfed == 0:  # nothing forced is waiting: the model's token
                    row.append(tokens[r], logprobs[r])
                    self.rules.advance(row, budget, eos=tokens[r] in self.eos_ids)
                    self._drop_taken_back(row, mask, r)
                    row.fork_due = _forks_here(row, fork_at)
                if row.finish is None and len(row.ids) >= sampling.max_tokens:
                    row.cut(sampling.max_tokens)
                if row.finish is not None:
                    finished.append(row)
                    continue
                keep.append(r)
                if row.fork_due:
                    row.fork_due = False
                    forks.append((r, self._fork(row)))
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

    def _drop_taken_back(self, row: _Row, mask, r: int) -> None:
        """Mask the cache columns of tokens the rules took back (the rest were never fed)."""
        start = row.taken_back_from
        if start is None:
            return
        for column in row.columns[start:]:
            mask[r, column] = 0
        del row.columns[start:]
        row.taken_back_from = None

    def _prefill(self, rows: list[_Row]):
        """One forward over prompt + resumed thinking (+ forced tokens already decided)."""
        inputs = [row.request.prompt_ids + row.ids for row in rows]
        width = max(len(x) for x in inputs)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (row, seq) in enumerate(zip(rows, inputs)):
            input_ids[r, width - len(seq) :] = torch.tensor(seq)
            mask[r, width - len(seq) :] = 1
            row.columns = list(range(width - len(row.ids), width))
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=input_ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            past_key_values=DynamicCache(config=self.model.config),
            use_cache=True,
            logits_to_keep=1,
        )
        return out.past_key_values, mask.to(self.device), out.logits[:, -1, :].float()

    def _step(self, active: list[_Row], cache, mask):
        """Feed each row's next unfed token; return next-token logits and the grown mask."""
        column = mask.shape[1]
        input_ids = torch.tensor([[row.ids[len(row.columns)]] for row in active], device=self.device)
        # a token's position counts the real tokens before it: prompt + fed completion
        positions = torch.tensor([[len(row.request.prompt_ids) + len(row.columns)] for row in active],
                                 device=self.device)
        for row in active:
            row.columns.append(column)
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

    def _choose(self, active: list[_Row], logits: torch.Tensor, sampling: SamplingConfig):
        """A sampled token and its logprob for every row (rows with forced tokens waiting ignore theirs)."""
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
        uniforms = torch.tensor([uniform(row.request.seed, len(row.ids)) for row in active], dtype=torch.float64)
        targets = (uniforms.to(cdf.device) * cdf[:, -1])[:, None]
        tokens = torch.searchsorted(cdf, targets, right=True)[:, 0].clamp(max=probs.shape[-1] - 1)
        return tokens.tolist(), logp.gather(-1, tokens[:, None])[:, 0].tolist()


def _forks_here(row: _Row, fork_at: frozenset[int]) -> bool:
    return row.thinking and row.thinking_tokens in fork_at


_MASK64 = (1 << 64) - 1


def uniform(seed: int, position: int) -> float:
    """The uniform draw in [0, 1) for the token at ``position``: fixed by (seed, position)
    alone, so a sequence samples the same tokens in any batch, and when resumed.

    A counter-based draw (SplitMix64's finaliser, Steele et al. 2014, over the pair)
    rather than a seeded generator: no state to share between threads or calls, and
    about a microsecond in plain Python.
    """
    z = _mix64(_mix64(seed) + (position + 1) * 0x9E3779B97F4A7C15)
    return (z >> 11) / float(1 << 53)


def _mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _top_p(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering (Holtzman et al. 2020): keep the smallest set with mass >= top_p."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    outside = sorted_probs.cumsum(-1) - sorted_probs >= top_p
    sorted_probs = sorted_probs.masked_fill(outside, 0.0)
    return torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
