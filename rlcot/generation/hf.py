"""The transformers backend: batched, budget-forced decoding on CPU or GPU.

Why not ``model.generate``: budget forcing needs per-sequence control in the middle
of a batch (append forced tokens to one row, take back another row's delimiter,
stop a third on a balanced brace, fork a fourth at a sweep budget), which its logits
processors and stopping criteria cannot express without re-running the batch. So
this module drives the model's forward pass itself and applies the shared rules of
``forcing.ForcingRules`` to each row after every sampled token. The KV cache it
writes into is ``kv_cache.SlabCache``; tokens are drawn by ``sampling.choose``.

Each step feeds exactly one token per row: the row's next unfed token, which is
either the one just sampled or the next forced one. Details that matter for speed
and exactness:

- Continuous batching (Orca's iteration-level scheduling, Yu et al., OSDI 2022):
  finished rows leave the batch at once, and when fewer than ``refill_at`` of
  ``batch_size`` rows are left while requests wait, the next ones are prefilled and
  merged into the running batch, so a long run or sweep keeps the batch full
  instead of draining to a straggler. Requests are taken longest prompt first.
- A finished row's cache slot is refilled by the last row, so only moved rows are
  copied; a fork copies one row.
- Left padding: a merged group is right-aligned to the running batch's last
  column, and columns a row does not own are masked. Each row's position ids count
  its own real tokens, so a row's numbers do not depend on its neighbours.
- Taking tokens back masks their cache columns instead of cutting the cache.
- Only the last position's logits are computed (``logits_to_keep=1``): the LM head
  over a whole prompt costs as much as several decode steps.
- A row that starts with forced tokens decided (probing at its cap, a cap of 0) has
  them prefilled, not fed one per step. A sweep forks a thinking row as it reaches
  each smaller budget: the copy takes a duplicate of its cache row.
- A sampled token depends on (seed, position) alone, not on the batch, so a probed
  or forked trace equals a fresh capped run (``sampling``).
- The gold answer's log-probability (a request's ``gold_ids``): when a row's thinking
  ends (closed, capped, EOS, or a sweep fork capped), a *gold twin* takes a copy of
  its cache row and is fed the cue and the gold tokens, forced, summing the raw
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
class _Row(SequenceState):
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

    ``batch_size`` bounds the rows decoded together (sweep forks come on top);
    ``refill_at``: when the running rows fall below this fraction of ``batch_size``
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
        # Longest first: a group admitted later is then (nearly always: a row resumed at its
        # cap also prefills its forced tokens) no wider than the running batch, so it fits
        # left of the batch's last column without moving the cache.
        order = sorted(range(len(requests)), key=lambda i: -(len(requests[i].prompt_ids) + len(requests[i].resume_ids)))
        waiting = deque(self._new_row(i, requests[i], top) for i in order)
        out: dict[int | None, list] = {cap: [None] * len(requests) for cap in (top, *fork_at)}
        golds: dict[tuple[int | None, int], float] = {}
        for row in self._decode(waiting, sampling, budget, progress, frozenset(fork_at)):
            if row.is_twin:
                golds[row.cap, row.index] = row.gold_sum
            else:
                out[row.cap][row.index] = self.rules.to_trace(row)
        for (cap, index), value in golds.items():
            if out[cap][index] is not None and out[cap][index].answer is not None:
                out[cap][index].gold_logprob = value
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

    def _fork_at(self, r: int, row: _Row) -> list[tuple[int, _Row]]:
        """The sweep fork of cache row ``r`` (capped where it stands) and its gold twin, as (source row, new row)."""
        child = self._fork(row)
        return [(r, child)] + [(r, twin) for twin in self._gold_twins(child)]

    def _gold_twins(self, row: _Row) -> list[_Row]:
        """A gold twin of a row whose thinking just ended: its thinking, the cue, then the gold, all forced."""
        gold = row.request.gold_ids
        if not gold or row.is_twin or row.thinking or row.finish is not None:
            return []
        end = row.thinking_end
        after = row.ids[end : end + len(row.cue_ids)]
        ids = row.ids[:end] + row.cue_ids + list(gold)
        if after and after != row.cue_ids[: len(after)] or len(row.columns) > end + len(row.cue_ids):
            return []  # the answer already began: the fed tokens are no longer the twin's context
        return [replace(row, ids=ids, forced=row.forced[:end] + [True] * (len(ids) - end),
                        logprobs=row.logprobs[:end] + [None] * (len(ids) - end), columns=list(row.columns),
                        fork_due=False, gold_start=len(ids) - len(gold), gold_sum=0.0)]

    @staticmethod
    def _score_gold(rows: list[_Row], logits: torch.Tensor) -> None:
        """Add each twin's next gold token's log-probability; a twin whose gold is all scored finishes."""
        twins = [r for r, row in enumerate(rows) if row.is_twin]
        if not twins:
            return
        logp = torch.log_softmax(logits[twins], -1)
        for i, r in enumerate(twins):
            row = rows[r]
            fed = len(row.columns)  # logits[r] predicts ids[fed]
            if fed >= row.gold_start:
                row.gold_sum += float(logp[i, row.ids[fed]])
            if fed == len(row.ids) - 1:
                row.finish = "gold"

    def _decode(self, waiting: deque, sampling: SamplingConfig, budget, progress, fork_at):
        """Yield each row of ``waiting`` (and each fork) as it finishes; row r of the cache is ``rows[r]``."""
        cache = SlabCache(self.device)
        rows: list[_Row] = []
        logits = None
        eos = frozenset(self.eos_ids)
        while waiting or rows:
            if waiting and len(rows) < max(self.refill_at * self.batch_size, 1):
                group = [waiting.popleft() for _ in range(min(len(waiting), self.batch_size - len(rows)))]
                rows, logits = self._admit(cache, rows, logits, group, fork_at)
            # a token for every row: rows with forced tokens waiting ignore theirs
            tokens, logprobs = choose(logits, sampling, [(row.request.seed, len(row.ids)) for row in rows])
            self._score_gold(rows, logits)
            gone, forks = set(), []
            for r, row in enumerate(rows):
                if row.unfed == 0 and not row.is_twin:  # nothing forced is waiting: the model's token
                    was_thinking = row.thinking
                    row.append(tokens[r], logprobs[r])
                    self.rules.advance(row, budget, eos=tokens[r] in eos)
                    if row.taken_back_from is not None:
                        self._drop_taken_back(row, cache, r)
                    row.fork_due = _forks_here(row, fork_at)
                    if was_thinking and not row.thinking:
                        forks += [(r, twin) for twin in self._gold_twins(row)]
                if row.finish is None and not row.is_twin and len(row.ids) >= sampling.max_tokens:
                    row.cut(sampling.max_tokens)
                if row.finish is not None:
                    gone.add(r)
                    yield row
                elif row.fork_due:
                    row.fork_due = False
                    forks += self._fork_at(r, row)
            if progress and gone:
                finished = sum(not rows[r].is_twin for r in gone)
                if finished:
                    progress(finished)
            if gone or forks:
                index = _refill_holes(len(rows), gone) + [r for r, _ in forks]
                cache.reorder(index)
                rows = [rows[r] for r in index[: len(index) - len(forks)]] + [child for _, child in forks]
            if rows:
                logits = self._step(rows, cache)

    def _admit(self, cache: SlabCache, rows: list[_Row], logits, group: list[_Row], fork_at):
        """Prefill ``group`` into the running batch; fork the new rows already at a sweep budget."""
        new_logits = self._prefill(cache, group)
        # the running rows' logits are those of their last step (stale when none are left)
        logits = torch.cat([logits, new_logits]) if rows else new_logits
        rows = rows + group
        # A sweep budget no larger than the resumed thinking (budget 0): fork before the first token.
        # Rows capped before their first token (a cap of 0, a probe at its cap) get their gold twin here.
        forks = []
        for r in range(len(rows) - len(group), len(rows)):
            forks += [(r, twin) for twin in self._gold_twins(rows[r])]
            if _forks_here(rows[r], fork_at):
                forks += self._fork_at(r, rows[r])
        if forks:
            index = list(range(len(rows))) + [r for r, _ in forks]
            cache.reorder(index)
            logits = logits[torch.tensor(index, device=logits.device)]
            rows = rows + [child for _, child in forks]
        return rows, logits

    def _drop_taken_back(self, row: _Row, cache: SlabCache, r: int) -> None:
        """Mask the cache columns of tokens the rules took back (the rest were never fed)."""
        start = row.taken_back_from
        cache.hide(r, row.columns[start:])
        del row.columns[start:]
        row.taken_back_from = None

    def _prefill(self, cache: SlabCache, group: list[_Row]):
        """One forward over prompt + resumed thinking (+ forced tokens already decided) of each new row."""
        inputs = [row.request.prompt_ids + row.ids for row in group]
        width = max(len(x) for x in inputs)
        input_ids = torch.full((len(group), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.bool)
        for r, seq in enumerate(inputs):
            input_ids[r, width - len(seq) :] = torch.tensor(seq)
            mask[r, width - len(seq) :] = True
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        attention_mask = cache.open_rows(mask.to(self.device))
        for row in group:
            row.columns = list(range(cache.hi - len(row.ids), cache.hi))
        out = self.model(
            input_ids=input_ids.to(self.device),
            attention_mask=attention_mask,
            position_ids=positions.to(self.device),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        cache.commit_rows(len(group))
        return out.logits[:, -1, :].float()

    def _step(self, rows: list[_Row], cache: SlabCache):
        """Feed each row's next unfed token; return next-token logits."""
        column = cache.hi
        feed, positions = [], []
        for row in rows:
            fed = len(row.columns)
            feed.append(row.ids[fed])
            # a token's position counts the real tokens before it: prompt + fed completion
            positions.append(len(row.request.prompt_ids) + fed)
            row.columns.append(column)
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


def _forks_here(row: _Row, fork_at: frozenset[int]) -> bool:
    return row.thinking and row.thinking_tokens in fork_at


def _refill_holes(size: int, gone: set[int]) -> list[int]:
    """Where each surviving row moves from: a row past the new end fills a hole below it,
    so only as many rows move as finished below the end (not every row after a hole)."""
    kept = size - len(gone)
    movers = iter(r for r in range(kept, size) if r not in gone)
    return [next(movers) if r in gone else r for r in range(kept)]
