"""Batch shapes every training adapter shares: per-row loss weights, padded token ids (all
text architectures train on identical batches)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def sample_weight(batch: Any) -> dict[str, torch.Tensor]:
    """Per-row loss weights when the rows carry them (pseudo-labels weigh less than humans)."""
    if "weight" not in batch:
        return {}
    return {"sample_weight": torch.as_tensor(np.asarray(batch["weight"]), dtype=torch.float32)}


def pad(ids: list[np.ndarray] | np.ndarray, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Ragged ids -> (input_ids, attention_mask) padded to this batch's longest item."""
    seqs = [np.asarray(s, dtype=np.int64) for s in ids]
    longest = max((len(s) for s in seqs), default=1) or 1
    out = np.full((len(seqs), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), longest), dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return out, mask


def text_batches(shard: Any, bs: int, shuffle_seed: int | None, pad_id: int) -> Any:
    """Token-id batches padded to their own longest item, with loss weights when present;
    shared by every text architecture so they train on identical batches."""

    kwargs: dict[str, Any] = {}
    if shuffle_seed is not None:
        kwargs = {"local_shuffle_buffer_size": 4 * bs, "local_shuffle_seed": shuffle_seed}
    for batch in shard.iter_batches(batch_size=bs, batch_format="numpy", **kwargs):
        ids, mask = pad(list(batch["input_ids"]), pad_id)
        y = torch.from_numpy(np.asarray(batch["label_index"], dtype=np.int64))
        inputs = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        yield {**inputs, **sample_weight(batch)}, y  # pseudo-labels weigh less


def text_inputs(batch: dict[str, np.ndarray], pad_id: int) -> dict[str, torch.Tensor]:
    """Padded token ids and attention mask of a numpy batch (any text architecture)."""

    ids, mask = pad(list(batch["input_ids"]), pad_id)
    return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
