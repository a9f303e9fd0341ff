"""The transformers backend: batched, budget-forced decoding on CPU or GPU.

Why not ``model.generate``: budget forcing needs per-sequence control in the middle
of a batch (append forced tokens to one sequence, take back another's delimiter,
stop a third on a balanced brace, fork a fourth at a sweep budget), which its logits
processors and stopping criteria cannot express without re-running the batch. So
this module drives the model's forward pass itself and applies the shared rules of
``forcing.ForcingRules`` to the sequence in each batch slot after every sampled
token. The KV cache it writes into is ``kv_cache.SlabCache``; tokens are drawn by
``sampling.choose``.

Each step feeds exactly one token per slot: its sequence's next unfed token, which is
either the one just sampled or the next forced one. Details that matter for speed
and exactness:

- Continuous batching (Orca's iteration-level scheduling, Yu et al., OSDI 2022):
  finished sequences leave the batch at once, and when fewer than ``refill_at`` of
  ``batch_size`` slots are filled while requests wait, the next ones are prefilled and
  merged into the running batch, so a long run or sweep keeps the batch full
  instead of draining to a straggler. Requests are taken longest prompt first.
- A finished sequence's cache slot is refilled from the last slot, so only moved
  slots are copied; a fork copies one slot.
- Left padding: a merged group is right-aligned to the running batch's last
  column, and columns a slot does not own are masked. Each slot's position ids count
  its own real tokens, so a sequence's numbers do not depend on its neighbours.
- Taking tokens back masks their cache columns instead of cutting the cache.
- Only the last position's logits are computed (``logits_to_keep=1``): the LM head
  over a whole prompt costs as much as several decode steps.
- A sequence that starts with forced tokens decided (probing at its cap, a cap of 0) has
  them prefilled, not fed one per step. A sweep forks a thinking sequence as it reaches
  each smaller budget: the copy takes a duplicate of its cache slot.
- A sampled token depends on (seed, position) alone, not on the batch, so a probed
  or forked trace equals a fresh capped run (``sampling``).
- The gold answer's log-probability (a request's ``gold_ids``): when a sequence's thinking
  ends (closed, capped, EOS, or a sweep fork capped), a *gold twin* takes a copy of
  its cache slot and is fed the cue and the gold tokens, forced, summing the raw
  (temperature 1) log-probability of each gold token as it goes; it never samples and
  leaves the batch when the gold is scored. So every budget's gold log-probability
  costs ~20 fed tokens on the forked cache, like its answer, and no prefill.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import Sequence

import torch

from ..thinking import ThinkingProtocol
from .base import GenerationRequest, ProgressCallback, SamplingConfig, Trace
from .budget import reusable_at
from .forcing import ForcingRules, SequenceState, check_request, eos_ids
from .kv_cache import SlabCache
from .sampling import choose


@dataclass
class _Slot(SequenceState):
    """The sequence in one batch slot; slot s of the batch is cache slot s of ``SlabCache``."""

    columns: list[int] = field(default_factory=list)  # cache column of each fed completion token
    fork_due: bool = False  # reached a sweep budget while thinking: spawn a capped copy
    gold_start: int | None = None  # a gold twin: ids[gold_start:] are the gold, scored as they are fed
    gold_sum: float = 0.0

    @property
    def unfed(self) -> int:
        return len(self.ids) - len(self.columns)

    @property
    def is_twin(self) -> bool:
        return self.gold_start is not None


class HFGenerator:
    """Budget-forced generation with a transformers causal LM.

    ``batch_size`` bounds the sequences decoded together (sweep forks come on top);
    ``refill_at``: when the filled slots fall below this fraction of ``batch_size``
    and requests wait, the next ones join the batch (0: only once it is empty).
    """

    def __init__(
        self,
        model,
        tokenizer,
        protocol: ThinkingProtocol | None = None,
        batch_size: int = 64,
        refill_at: float = 0.75,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        if not 0 <= refill_at <= 1:
            raise ValueError(f"refill_at={refill_at} must be a fraction in [0, 1] of batch_size")
        self.model = model
        self.tokenizer = tokenizer
        self.protocol = protocol or ThinkingProtocol()
        self.batch_size = batch_size
        self.refill_at = refill_at
        self.device = next(model.parameters()).device
        self.eos_ids = eos_ids(tokenizer, getattr(model, "generation_config", None))
        self.rules = ForcingRules(tokenizer, self.protocol, self.eos_ids)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]

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

        A sequence that reaches a smaller budget while still thinking forks: the copy takes
        a duplicate of its KV cache slot, is capped there and decodes its answer in the
        same batch. Nothing is recomputed, so the sweep costs one run plus ~20 tokens a
        fork. A sequence that finished thinking earlier serves every budget it fits under.
        """
        return self._generate(requests, sampling, budget, progress, fork_at=tuple(budgets))

    # --------------------------------------------------------------- the loop

    @torch.inference_mode()
    def _generate(self, requests, sampling, budget, progress, fork_at) -> dict[int | None, list[Trace]]:
        for request in requests:
            check_request(request, budget)
        top = budget.max_thinking_tokens
        # Longest first: a group admitted later is then (nearly always: a sequence resumed at its
        # cap also prefills its forced tokens) no wider than the running batch, so it fits
        # left of the batch's last column without moving the cache.
        order = sorted(range(len(requests)), key=lambda i: -(len(requests[i].prompt_ids) + len(requests[i].resume_ids)))
        waiting = deque(self._new_slot(i, requests[i], top) for i in order)
        out: dict[int | None, list] = {cap: [None] * len(requests) for cap in (top, *fork_at)}
        golds: dict[tuple[int | None, int], float] = {}
        for slot in self._decode(waiting, sampling, budget, progress, frozenset(fork_at)):
            if slot.is_twin:
                golds[slot.cap, slot.index] = slot.gold_sum
            else:
                out[slot.cap][slot.index] = self.rules.to_trace(slot)
        for (cap, index), value in golds.items():
            if out[cap][index] is not None and out[cap][index].answer is not None:
                out[cap][index].gold_logprob = value
        for cap in fork_at:  # sequences that finished thinking before reaching this budget
            for i, trace in enumerate(out[cap]):
                if trace is None:
                    parent = out[top][i]
                    if not reusable_at(parent, cap):
                        raise RuntimeError(f"no trace for budget {cap} of request {i}: a fork was missed")
                    out[cap][i] = replace(parent, budget=cap)
        return out

    def _new_slot(self, index: int, request: GenerationRequest, cap: int | None) -> _Slot:
        return self.rules.start(index, request, cap, state_type=_Slot)

    def _fork(self, slot: _Slot) -> _Slot:
        """A copy of a thinking sequence, capped where it stands."""
        child = replace(slot, ids=list(slot.ids), forced=list(slot.forced), logprobs=list(slot.logprobs),
                        columns=list(slot.columns), cap=slot.thinking_tokens, fork_due=False)
        self.rules.maybe_cap(child)
        return child

    def _fork_at(self, s: int, slot: _Slot) -> list[tuple[int, _Slot]]:
        """The sweep fork of cache slot ``s`` (capped where it stands) and its gold twin, as (source slot, new slot)."""
        child = self._fork(slot)
        return [(s, child)] + [(s, twin) for twin in self._gold_twins(child)]

    def _gold_twins(self, slot: _Slot) -> list[_Slot]:
        """A gold twin of a sequence whose thinking just ended: its thinking, the cue, then the gold, all forced."""
        gold = slot.request.gold_ids
        if not gold or slot.is_twin or slot.thinking or slot.finish is not None:
            return []
        end = slot.thinking_end
        after = slot.ids[end : end + len(slot.cue_ids)]
        ids = slot.ids[:end] + slot.cue_ids + list(gold)
        if after and after != slot.cue_ids[: len(after)] or len(slot.columns) > end + len(slot.cue_ids):
            return []  # the answer already began: the fed tokens are no longer the twin's context
        return [replace(slot, ids=ids, forced=slot.forced[:end] + [True] * (len(ids) - end),
                        logprobs=slot.logprobs[:end] + [None] * (len(ids) - end), columns=list(slot.columns),
                        fork_due=False, gold_start=len(ids) - len(gold), gold_sum=0.0)]

    @staticmethod
    def _score_gold(slots: list[_Slot], logits: torch.Tensor) -> None:
        """Add each twin's next gold token's log-probability; a twin whose gold is all scored finishes."""
        twins = [s for s, slot in enumerate(slots) if slot.is_twin]
        if not twins:
            return
        logp = torch.log_softmax(logits[twins], -1)
        for i, s in enumerate(twins):
            slot = slots[s]
            fed = len(slot.columns)  # logits[s] predicts ids[fed]
            if fed >= slot.gold_start:
                slot.gold_sum += float(logp[i, slot.ids[fed]])
            if fed == len(slot.ids) - 1:
                slot.finish = "gold"

    def _decode(self, waiting: deque, sampling: SamplingConfig, budget, progress, fork_at):
        """Yield each sequence of ``waiting`` (and each fork) as it finishes; cache slot s holds ``slots[s]``."""
        cache = SlabCache(self.device)
        slots: list[_Slot] = []
        logits = None
        eos = frozenset(self.eos_ids)
        while waiting or slots:
            if waiting and len(slots) < max(self.refill_at * self.batch_size, 1):
                group = [waiting.popleft() for _ in range(min(len(waiting), self.batch_size - len(slots)))]
                slots, logits = self._admit(cache, slots, logits, group, fork_at)
            # a token for every slot: slots with forced tokens waiting ignore theirs
            tokens, logprobs = choose(logits, sampling, [(slot.request.seed, len(slot.ids)) for slot in slots])
            self._score_gold(slots, logits)
            gone, forks = set(), []
            for s, slot in enumerate(slots):
                if slot.unfed == 0 and not slot.is_twin:  # nothing forced is waiting: the model's token
                    was_thinking = slot.thinking
                    slot.append(tokens[s], logprobs[s])
                    self.rules.advance(slot, budget, eos=tokens[s] in eos)
                    if slot.taken_back_from is not None:
                        self._drop_taken_back(slot, cache, s)
                    slot.fork_due = _forks_here(slot, fork_at)
                    if was_thinking and not slot.thinking:
                        forks += [(s, twin) for twin in self._gold_twins(slot)]
                if slot.finish is None and not slot.is_twin and len(slot.ids) >= sampling.max_tokens:
                    slot.cut(sampling.max_tokens)
                if slot.finish is not None:
                    gone.add(s)
                    yield slot
                elif slot.fork_due:
                    slot.fork_due = False
                    forks += self._fork_at(s, slot)
            if progress and gone:
                finished = sum(not slots[s].is_twin for s in gone)
                if finished:
                    progress(finished)
            if gone or forks:
                index = _refill_holes(len(slots), gone) + [s for s, _ in forks]
                cache.reorder(index)
                slots = [slots[s] for s in index[: len(index) - len(forks)]] + [child for _, child in forks]
            if slots:
                logits = self._step(slots, cache)

    def _admit(self, cache: SlabCache, slots: list[_Slot], logits, group: list[_Slot], fork_at):
        """Prefill ``group`` into the running batch; fork the new sequences already at a sweep budget."""
        new_logits = self._prefill(cache, group)
        # the filled slots' logits are those of their last step (stale when none are left)
        logits = torch.cat([logits, new_logits]) if slots else new_logits
        slots = slots + group
        # A sweep budget no larger than the resumed thinking (budget 0): fork before the first token.
        # Sequences capped before their first token (a cap of 0, a probe at its cap) get their gold twin here.
        forks = []
        for s in range(len(slots) - len(group), len(slots)):
            forks += [(s, twin) for twin in self._gold_twins(slots[s])]
            if _forks_here(slots[s], fork_at):
                forks += self._fork_at(s, slots[s])
        if forks:
            index = list(range(len(slots))) + [s for s, _ in forks]
            cache.reorder(index)
            logits = logits[torch.tensor(index, device=logits.device)]
            slots = slots + [child for _, child in forks]
        return slots, logits

    def _drop_taken_back(self, slot: _Slot, cache: SlabCache, s: int) -> None:
        """Mask the cache columns of tokens the rules took back (the rest were never fed)."""
        start = slot.taken_back_from
        cache.hide(s, slot.columns[start:])
        del slot.columns[start:]
        slot.taken_back_from = None

    def _prefill(self, cache: SlabCache, group: list[_Slot]):
        """One forward over prompt + resumed thinking (+ forced tokens already decided) of each new sequence."""
        inputs = [slot.request.prompt_ids + slot.ids for slot in group]
        width = max(len(x) for x in inputs)
        input_ids = torch.full((len(group), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.bool)
        for s, seq in enumerate(inputs):
            input_ids[s, width - len(seq) :] = torch.tensor(seq)
            mask[s, width - len(seq) :] = True
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        attention_mask = cache.open_slots(mask.to(self.device))
        for slot in group:
            slot.columns = list(range(cache.hi - len(slot.ids), cache.hi))
        out = self.model(
            input_ids=input_ids.to(self.device),
            attention_mask=attention_mask,
            position_ids=positions.to(self.device),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        cache.commit_slots(len(group))
        return out.logits[:, -1, :].float()

    def _step(self, slots: list[_Slot], cache: SlabCache):
        """Feed each slot its sequence's next unfed token; return next-token logits."""
        column = cache.hi
        feed, positions = [], []
        for slot in slots:
            fed = len(slot.columns)
            feed.append(slot.ids[fed])
            # a token's position counts the real tokens before it: prompt + fed completion
            positions.append(len(slot.request.prompt_ids) + fed)
            slot.columns.append(column)
        out = self.model(
            input_ids=torch.tensor(feed, device=self.device)[:, None],
            attention_mask=cache.open_column(),
            position_ids=torch.tensor(positions, device=self.device)[:, None],
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        cache.commit_column()
        return out.logits[:, -1, :].float()


def _forks_here(slot: _Slot, fork_at: frozenset[int]) -> bool:
    return slot.thinking and slot.thinking_tokens in fork_at


def _refill_holes(size: int, gone: set[int]) -> list[int]:
    """Where each surviving slot moves from: a slot past the new end fills a hole below it,
    so only as many slots move as finished below the end (not every slot after a hole)."""
    kept = size - len(gone)
    movers = iter(s for s in range(kept, size) if s not in gone)
    return [next(movers) if s in gone else s for s in range(kept)]
