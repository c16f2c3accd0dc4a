"""Head-only training on cached features (`model.freeze_backbone` + `train.embedding_cache`).

Why: with a frozen body, every epoch of every fold model runs the same body forward on the
same seed images to train a linear head. Computing what the head sees once per item (a
Ray Data pass, `fit.embed_cache`) and training the head on those vectors turns k+1
trainings of epochs x forward passes into one forward pass plus seconds of head steps.
The published model is the whole image model (body as loaded, the trained head), so
labeling does not know the difference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from raylabel.models.batches import sample_weight
from raylabel.models.image_task import ShardCache

FEATURE = "embedding"  # the cached column: the head's input, flattened, float32


def head_module(task: Any) -> nn.Module:
    """The class head of an image task's model (`task.head` names its parameters)."""
    name = str(task.head).removeprefix("backbone.").rstrip(".")
    return task.model.backbone.get_submodule(name)


def build_frozen(make: Any, config: dict[str, Any], rank: int) -> Any:
    """The image task with every random draw of its construction fixed by `train.seed`, so the
    body that computed the cached features and the body published with the trained head are
    the same tensors even where the pretrained start left some of them initialised."""
    outer = torch.random.get_rng_state()
    try:
        torch.manual_seed(int(config["seed"]))
        task = make(config, rank)
    finally:
        torch.random.set_rng_state(outer)
    task.model.eval()  # the body never trains: batch-norm keeps the pretrained statistics
    return task


@torch.inference_mode()
def head_inputs(task: Any, pixels: np.ndarray, device: torch.device) -> np.ndarray:
    """(n, d) float32: what the class head receives for uint8 NCHW images, as in labeling."""
    captured: list[torch.Tensor] = []

    def grab(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        captured.append(torch.flatten(args[0], 1).float())

    handle = head_module(task).register_forward_pre_hook(grab)
    try:
        x = torch.from_numpy(np.ascontiguousarray(pixels)).to(device)
        task.model.to(device)(x.contiguous(memory_format=torch.channels_last))
    finally:
        handle.remove()
    return captured[0].cpu().numpy().astype(np.float32)


class HeadTask:
    """The training-loop contract over cached features: only the head is a module to train;
    saving writes the whole image model through the wrapped task."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model = head_module(inner)  # shares its parameters with inner.model
        self.cache_bytes = int(getattr(inner, "cache_bytes", 0))
        self.caches: dict[int, ShardCache] = {}

    def is_head(self, name: str) -> bool:
        """Every trainable parameter here is the head's."""
        del name
        return True

    def batches(self, shard: Any, bs: int, shuffle_seed: int | None) -> Any:
        """(inputs, labels) of cached features, shuffled by `shuffle_seed`; the shard is kept in
        memory after its first pass (features are small)."""
        cache = self.caches.get(id(shard))
        if cache is not None and cache.full is not None:
            yield from cache.batches(bs, shuffle_seed)
            return
        cache = ShardCache(max(self.cache_bytes, 64 * 2**20))
        kwargs = {}
        if shuffle_seed is not None:
            kwargs = {"local_shuffle_buffer_size": 4 * bs, "local_shuffle_seed": shuffle_seed}
        for batch in shard.iter_torch_batches(batch_size=bs, **kwargs):
            inputs = {"e": batch[FEATURE].float(), **sample_weight(batch)}
            y = batch["label_index"].long()
            cache.record(inputs, y)
            yield inputs, y
        cache.seal()
        self.caches[id(shard)] = cache

    def inputs_from_numpy(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """Model inputs of a numpy batch of cached features (fold models predicting rows)."""
        return {"e": torch.from_numpy(np.ascontiguousarray(batch[FEATURE], dtype=np.float32))}

    def forward(self, model: nn.Module, inputs: dict[str, torch.Tensor], train: bool) -> Any:
        """Logits of the head on the features (no augmentation: the features are fixed)."""
        del train
        return model(inputs["e"])

    def save(self, model: nn.Module, out: Path) -> None:
        """The wrapped task's checkpoint layout for the whole model (the head was trained in
        place inside it), so publishing and labeling are unchanged."""
        del model
        self.inner.save(self.inner.model, out)

    def restore(self, model: nn.Module, ckpt: Path) -> None:
        """A restarted worker group reloads the whole model; the head is part of it."""
        del model
        self.inner.restore(self.inner.model, ckpt)
