"""Examples -> fixed-length rows -> batches.

With packing, several examples share one row. Position ids restart at 0 for every example; transformers
(5.x) reads the restarts from ``position_ids`` when no ``attention_mask`` is passed and builds a
block-diagonal causal mask (``masking_utils.find_packed_sequence_indices``; only without a KV cache, so
pass ``use_cache=False``). No token attends across an example boundary, on CPU with sdpa or eager
attention alike. Labels are already shifted per example, so no target crosses a boundary either. Padding
positions get position id 0 each: every pad token is its own one-token segment and carries no label.
"""

from __future__ import annotations

import torch

from oidkit.core.chat import IGNORE_INDEX


def pack_examples(examples: list[dict], max_seq_len: int) -> list[list[int]]:
    """Rows as lists of example indices, first-fit in order: each example goes to the first row with room for
    it; every row holds at most ``max_seq_len`` tokens (an example longer than that gets a row of its own).

    A max-tree over the rows' free space finds that row in O(log rows): scanning every row is quadratic, and
    a pretraining corpus of full-length chunks is the worst case (every row full, every scan to the end).
    """
    leaves = 1 << max(len(examples) - 1, 0).bit_length()  # at most one row per example
    free = [-1] * (2 * leaves)  # leaf: a row's free tokens (-1: not opened); inner node: max of its children
    rows: list[list[int]] = []
    for index, example in enumerate(examples):
        length = len(example["input_ids"])
        if free[1] >= length:
            node = 1
            while node < leaves:  # descend towards the leftmost row with room
                node = 2 * node if free[2 * node] >= length else 2 * node + 1
            rows[node - leaves].append(index)
            free[node] -= length
        else:
            node = leaves + len(rows)
            rows.append([index])
            free[node] = max_seq_len - length
        while node > 1:
            node //= 2
            free[node] = max(free[2 * node], free[2 * node + 1])
    return rows


def single_rows(examples: list[dict]) -> list[list[int]]:
    """One example per row (packing off)."""
    return [[i] for i in range(len(examples))]


def collate_rows(examples: list[dict], rows: list[list[int]], pad_id: int, length: int | None = None,
                 pin: bool = False) -> dict:
    """``input_ids``, ``labels``, ``position_ids`` tensors of shape (rows, length), right-padded, and
    ``tokens``: the number of real (non-padding) tokens. ``length`` defaults to the longest row in this batch.

    ``pin`` (training on CUDA) puts the batch in pinned (page-locked) memory, once: the three tensors are
    views of one block, so the copies to the GPU (``models.device.to_device``) do not block.
    """
    flat = [[examples[i] for i in row] for row in rows]
    length = length or max(sum(len(e["input_ids"]) for e in row) for row in flat)
    packed = torch.empty((3, len(rows), length), dtype=torch.long)
    packed[0], packed[1], packed[2] = pad_id, IGNORE_INDEX, 0
    input_ids, labels, position_ids = packed
    for r, row in enumerate(flat):
        at = 0
        for example in row:
            n = len(example["input_ids"])
            input_ids[r, at : at + n] = torch.tensor(example["input_ids"])
            labels[r, at : at + n] = torch.tensor(example["labels"])
            position_ids[r, at : at + n] = torch.arange(n)
            at += n
    if pin:
        input_ids, labels, position_ids = packed.pin_memory()
    tokens = sum(len(e["input_ids"]) for row in flat for e in row)
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids, "tokens": tokens}


def row_order(num_rows: int, seed: int, epoch: int) -> list[int]:
    """The shuffled row order of an epoch: a function of seed and epoch only, so a resumed run replays it."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_rows, generator=generator).tolist()


class BatchSource:
    """Micro-batch ``i`` of the whole run, for process ``rank`` of ``world``: a pure function of ``i``.

    Each global micro-step takes ``batch_size * world`` rows of the epoch's shuffled order and process
    ``rank`` gets its own slice, so processes see different data and a resumed run continues from the
    saved micro-step index exactly. The last micro-step of an epoch wraps to the start of the order to
    stay full.
    """

    def __init__(self, examples: list[dict], rows: list[list[int]], *, batch_size: int, pad_id: int, seed: int,
                 rank: int = 0, world: int = 1, pin: bool = False):
        self.examples, self.rows, self.pin = examples, rows, pin
        self.batch_size, self.pad_id, self.seed, self.rank, self.world = batch_size, pad_id, seed, rank, world
        self.per_epoch = -(-len(rows) // (batch_size * world))
        self._orders: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return self.per_epoch

    def row_ids(self, index: int) -> list[int]:
        epoch, step = divmod(index, self.per_epoch)
        if epoch not in self._orders:
            self._orders = {epoch: row_order(len(self.rows), self.seed, epoch)}
        order = self._orders[epoch]
        start = (step * self.world + self.rank) * self.batch_size
        return [order[i % len(order)] for i in range(start, start + self.batch_size)]

    def __call__(self, index: int) -> dict:
        return collate_rows(self.examples, [self.rows[r] for r in self.row_ids(index)], self.pad_id, pin=self.pin)


def eval_batches(examples: list[dict], rows: list[list[int]], batch_size: int, pad_id: int,
                 limit: int | None = None, pin: bool = False) -> list[dict]:
    """Validation batches in order (no shuffle), at most ``limit`` of them (``pin``: see ``collate_rows``)."""
    starts = range(0, len(rows), batch_size)[:limit] if limit else range(0, len(rows), batch_size)
    return [collate_rows(examples, rows[i : i + batch_size], pad_id, pin=pin) for i in starts]
