"""The hf backend's KV cache: preallocated buffers for a batch whose slots come and go.

Why not ``DynamicCache``: it concatenates (copies) every layer's whole cache at
every step, and its ``batch_select_indices`` copies it again whenever a sequence
finishes. ``SlabCache`` keeps each layer's keys and values in buffers allocated
ahead and grown by doubling. Here a step writes one column in place; a finished
sequence's cache slot is refilled from the last slot (only moved slots are copied,
see ``HFGenerator``); a fork, or a gold twin, copies one slot.

- Sequences are addressed by cache slot, columns by a logical number that survives
  moving or growing the buffers. Which slot attends to which column is one boolean mask, so
  taking tokens back hides their columns instead of cutting the cache: the other
  slots are untouched, and a masked column is invisible to attention.
- A prefill is right-aligned to the batch's last column (left padding); leading
  columns no live slot uses leave the window the model attends, since attention
  costs per column.

Sliding-window attention is not modelled: every layer attends to the sequence's
whole history, which is right for the Llama-family models this targets.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
from transformers.cache_utils import Cache, CacheLayerMixin


class SlabCache(Cache):
    """A KV cache for a batch whose slots come and go: preallocated buffers, a moving window.

    Buffers are [slots, heads, columns, dim]. Columns are numbered logically (a column
    keeps its number while the buffers move or grow; ``origin`` is the number of
    buffer column 0); live slots are ``0 .. n-1`` and live columns ``lo .. hi-1``.
    ``mask[s, c]`` says whether slot s attends to column c. Before each forward the
    generator points ``window`` at the slots and columns it feeds: the layers write
    the new keys there and hand the model the live part, a view, not a copy.

    Every buffer cell is zero or a key/value some slot wrote, so a masked column never
    brings a NaN into attention (0 * NaN would poison the slot's output).
    """

    def __init__(self, device):
        super().__init__(layer_class_to_replicate=partial(SlabLayer, self))
        self.device = device
        self.slots_capacity, self.columns_capacity = 0, 0
        self.mask = torch.zeros((0, 0), dtype=torch.bool, device=device)
        self.origin = 0
        self.lo = self.hi = 0
        self.n = 0
        self.window = (0, 0, 0, 0)  # buffer slots [first, last), attended from column start, written at write

    def _at(self, column: int) -> int:
        return column - self.origin

    def open_slots(self, mask: torch.Tensor) -> torch.Tensor:
        """Make room for a prefill of ``len(mask)`` slots right-aligned to ``hi``; return its attention mask."""
        count, width = mask.shape
        if self.n == 0:
            self.lo = self.hi = self.origin + width  # an empty batch: start afresh
        start = self.hi - width
        self._reserve(self.n + count, min(start, self.lo), self.hi + 1)
        if start < self.lo:  # the batch widens to the left: those columns are not its slots'
            self.mask[: self.n, self._at(start) : self._at(self.lo)] = False
            self.lo = start
        new = slice(self.n, self.n + count)
        self.mask[new, self._at(self.lo) : self._at(self.hi)] = False
        self.mask[new, self._at(start) : self._at(self.hi)] = mask
        self.window = (self.n, self.n + count, self._at(start), self._at(start))
        return self.mask[new, self._at(start) : self._at(self.hi)]

    def commit_slots(self, count: int) -> None:
        self.n += count

    def open_column(self) -> torch.Tensor:
        """Point the window at one new column for every live slot; return the mask the step attends with."""
        self._reserve(self.n, self.lo, self.hi + 1)
        write = self._at(self.hi)
        self.mask[: self.n, write] = True
        self.window = (0, self.n, self._at(self.lo), write)
        return self.mask[: self.n, self._at(self.lo) : write + 1]

    def commit_column(self) -> None:
        self.hi += 1

    def hide(self, slot: int, columns: Sequence[int]) -> None:
        for column in columns:
            self.mask[slot, self._at(column)] = False

    def reorder(self, index: list[int]) -> None:
        """Slot i becomes the old slot ``index[i]`` (a slot named twice is duplicated); slots not named leave."""
        self._reserve(len(index), self.lo, self.hi)
        moved = [i for i, source in enumerate(index) if i != source]
        if moved:
            target = torch.tensor(moved, device=self.device)
            source = torch.tensor([index[i] for i in moved], device=self.device)
            live = slice(self._at(self.lo), self._at(self.hi))
            for layer in self.layers:
                layer.copy_slots(target, source, live)
            self.mask[target, live] = self.mask[source, live]
        shrank = len(index) < self.n
        self.n = len(index)
        if shrank and self.n:
            # Leading columns no live slot attends to leave the window: attention costs per column.
            used = self.mask[: self.n, self._at(self.lo) : self._at(self.hi)].any(0)
            self.lo += int(used.to(torch.uint8).argmax())

    def _reserve(self, slots: int, first: int, last: int) -> None:
        """Grow or shift the buffers so they hold ``slots`` slots and logical columns [first, last)."""
        slots_fit = slots <= self.slots_capacity
        columns_fit = first >= self.origin and last <= self.origin + self.columns_capacity
        if slots_fit and columns_fit:
            return
        # Slots grow by half. Columns: a window that outgrows half the buffer gets a buffer
        # twice its size, otherwise it is shifted to the start; either way at least half the
        # buffer is free after a move, so a step copies O(1) columns on average.
        new_slots = self.slots_capacity if slots_fit else max(slots, self.slots_capacity * 3 // 2)
        need = last - first
        new_columns = self.columns_capacity if 2 * need <= self.columns_capacity else 2 * need
        self._relayout(new_slots, new_columns, origin=first)

    def _relayout(self, slots: int, columns: int, origin: int) -> None:
        """New buffers of ``slots`` x ``columns`` whose column 0 is logical column ``origin``; live part copied."""
        length = self.hi - self.lo
        old = slice(self._at(self.lo), self._at(self.lo) + length)
        new = slice(self.lo - origin, self.lo - origin + length)
        for layer in self.layers:
            layer.relayout(slots, columns, self.n, old, new)
        mask = torch.zeros((slots, columns), dtype=torch.bool, device=self.device)
        mask[: self.n, new] = self.mask[: self.n, old]
        self.mask, self.origin = mask, origin
        self.slots_capacity, self.columns_capacity = slots, columns


class SlabLayer(CacheLayerMixin):
    """One layer's keys and values in ``SlabCache``'s layout."""

    is_sliding = False

    def __init__(self, slab: SlabCache):
        super().__init__()
        self.slab = slab

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        slots, columns = self.slab.slots_capacity, self.slab.columns_capacity
        self.keys = key_states.new_zeros((slots, key_states.shape[1], columns, key_states.shape[3]))
        self.values = value_states.new_zeros((slots, value_states.shape[1], columns, value_states.shape[3]))
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        first, last, start, write = self.slab.window
        end = write + key_states.shape[-2]
        self.keys[first:last, :, write:end] = key_states
        self.values[first:last, :, write:end] = value_states
        return self.keys[first:last, :, start:end], self.values[first:last, :, start:end]

    def get_seq_length(self) -> int:
        _, _, start, write = self.slab.window
        return write - start

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.get_seq_length() + query_length, 0

    def get_max_length(self) -> int:
        return -1

    def copy_slots(self, target: torch.Tensor, source: torch.Tensor, live: slice) -> None:
        if self.is_initialized:  # the right side is gathered before any slot is overwritten
            self.keys[target, :, live] = self.keys[source, :, live]
            self.values[target, :, live] = self.values[source, :, live]

    def relayout(self, slots: int, columns: int, n: int, old: slice, new: slice) -> None:
        if not self.is_initialized:
            return
        for name in ("keys", "values"):
            buffer = getattr(self, name)
            grown = buffer.new_zeros((slots, buffer.shape[1], columns, buffer.shape[3]))
            grown[:n, :, new] = buffer[:n, :, old]
            setattr(self, name, grown)
