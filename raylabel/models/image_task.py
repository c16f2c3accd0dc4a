"""Training adapter for image models: batches, augmentation, checkpoints (Ray Train and fold
tasks use the same one, so a fold model is the model the nightly job would train)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from raylabel.models.batches import sample_weight


def _augment(x: torch.Tensor, mode: str, gen: torch.Generator) -> torch.Tensor:
    """Label-preserving transforms: flips and small shifts for most images; quarter turns
    too when the classes do not depend on orientation (shapes, cells, aerial tiles). The
    `_affine` modes add what a small seed needs most: a per-item random zoom, tilt and
    shift plus brightness and contrast jitter, so a few dozen items per class stand for
    many more views of them."""
    if mode == "none":
        return x
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
    if mode.startswith("flip_rot90"):
        x = torch.rot90(x, int(torch.randint(0, 4, (1,), generator=gen)), (2, 3))
    if mode.endswith("_affine"):
        return _affine_jitter(x, gen)
    pad = max(1, x.shape[-1] // 16)
    dx, dy = (int(v) for v in torch.randint(-pad, pad + 1, (2,), generator=gen))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def _affine_jitter(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Per-item zoom 0.85-1.15, rotation +-15 degrees, shift +-8%, then brightness +-20 and
    contrast x0.8-1.2 (pixel units); returns float pixels in [0, 255] (the model's input
    normalisation takes float as readily as uint8)."""
    from torch.nn import functional as F

    n = x.shape[0]

    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    scale, angle = u(0.85, 1.15), u(-0.26, 0.26)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, u(-0.08, 0.08)], 1), torch.stack([sin, cos, u(-0.08, 0.08)], 1)],
        1,
    )
    xf = x.float()
    grid = F.affine_grid(theta, list(xf.shape), align_corners=False)
    out = F.grid_sample(xf, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * u(0.8, 1.2).view(n, 1, 1, 1) + mean + u(-20.0, 20.0).view(n, 1, 1, 1)
    return out.clamp(0.0, 255.0)


class ShardCache:
    """A worker's decoded shard, kept in memory after its first full pass when it fits.

    Seed sets are small next to drops, and on CPU the per-epoch walk through Ray Data
    (split coordinator, block fetches, batch formatting, local shuffle) costs as much as the
    small model's steps; later epochs reshuffle the kept tensors locally instead. The
    shard's size and so the step count per epoch stay what the first pass delivered."""

    def __init__(self, cap_bytes: int) -> None:
        self.cap_bytes = cap_bytes
        self.parts: list[tuple[dict[str, torch.Tensor], torch.Tensor]] = []
        self.nbytes = 0
        self.full: tuple[dict[str, torch.Tensor], torch.Tensor] | None = None

    def record(self, inputs: dict[str, torch.Tensor], y: torch.Tensor) -> None:
        """Keep one batch of the first pass; once the shard outgrows the cap everything kept is
        dropped and the shard streams every epoch."""
        if self.nbytes > self.cap_bytes:
            return
        self.nbytes += sum(t.numel() * t.element_size() for t in inputs.values())
        self.parts.append((inputs, y))
        if self.nbytes > self.cap_bytes:
            self.parts.clear()  # too big to keep: this shard streams every epoch

    def seal(self) -> None:
        """End of the first complete pass: the kept batches become one tensor set for later epochs,
        if the whole shard fitted."""
        if self.parts and self.nbytes <= self.cap_bytes:
            keys = self.parts[0][0].keys()
            inputs = {k: torch.cat([p[0][k] for p in self.parts]) for k in keys}
            self.full = (inputs, torch.cat([p[1] for p in self.parts]))
        self.parts.clear()

    def batches(self, bs: int, shuffle_seed: int | None) -> Any:
        """A later epoch's batches from memory: reshuffled by `shuffle_seed` (in order when None),
        same batch size as the streamed pass."""
        assert self.full is not None
        inputs, y = self.full
        n = len(y)
        if shuffle_seed is None:
            order = torch.arange(n)
        else:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(shuffle_seed))
        for start in range(0, n, bs):
            idx = order[start : start + bs]
            yield {k: v[idx] for k, v in inputs.items()}, y[idx]


class ImageTask:
    """Image batches: uint8 pixels, augmented on the fly."""

    def __init__(self, config: dict[str, Any], rank: int) -> None:
        from safetensors.torch import load_file

        from raylabel.models.image import (
            HEADS,
            build_image_model,
            freeze_backbone,
            load_pretrained_backbone,
        )

        self.init_batches(config, rank)
        self.model = build_image_model(config["arch"], config["num_classes"], config["dropout"])
        if config.get("pretrained"):
            arch = config["arch"]
            skipped = load_pretrained_backbone(self.model, arch, load_file(config["pretrained"]))
            if rank == 0:
                print(f"[raylabel] pretrained weights loaded; re-initialised: {skipped}")
        if config.get("freeze_backbone"):
            freeze_backbone(self.model, config["arch"])
        self.head = "backbone." + HEADS.get(config["arch"], "\0")

    def init_batches(self, config: dict[str, Any], rank: int) -> None:
        """What batches and augmentation need, whatever builds the model (torchvision's
        architectures here, transformers' in hf_image)."""
        self.augment = config["augment"]
        self.gen = torch.Generator().manual_seed(int(config["seed"]) * 1000 + rank)
        self.cache_bytes = int(config.get("worker_cache_mb", 0)) * 2**20
        self.caches: dict[int, ShardCache] = {}

    def is_head(self, name: str) -> bool:
        """Whether a parameter is the class head's (`train.backbone_lr_scale` spares it)."""
        return name.startswith(self.head)

    def batches(self, shard: Any, bs: int, shuffle_seed: int | None) -> Any:
        """Training-loop contract: (inputs, labels) with uint8 pixels, plus loss weights when rows
        carry them, shuffled by `shuffle_seed` (in order when None); a shard's first complete pass
        may be kept in memory for later epochs (`worker_cache_mb`)."""
        cache = self.caches.get(id(shard))
        if cache is not None and cache.full is not None:
            yield from cache.batches(bs, shuffle_seed)
            return
        cache = ShardCache(self.cache_bytes) if self.cache_bytes > 0 else None
        kwargs = {}
        if shuffle_seed is not None:
            kwargs = {"local_shuffle_buffer_size": 4 * bs, "local_shuffle_seed": shuffle_seed}
        for batch in shard.iter_torch_batches(batch_size=bs, **kwargs):
            inputs = {"x": batch["pixels"], **sample_weight(batch)}
            y = batch["label_index"].long()
            if cache is not None:
                cache.record(inputs, y)
            yield inputs, y
        if cache is not None:  # reached only when the pass was complete
            cache.seal()
            self.caches[id(shard)] = cache

    def inputs_from_numpy(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """Model inputs of a numpy batch (prediction over a dataset's rows)."""
        return {"x": torch.from_numpy(np.ascontiguousarray(batch["pixels"]))}

    def forward(self, model: nn.Module, inputs: dict[str, torch.Tensor], train: bool) -> Any:
        """Logits; with `train` the batch is augmented first, so training sees new views of each
        item while validation and prediction see the items as they are."""
        x = inputs["x"]
        if train:
            x = _augment(x, self.augment, self.gen)
        # NHWC input: oneDNN's and cuDNN's fast convolution path (training steps 1.1-1.5x on
        # CPU, bench/cpu_layout.py); the weights keep their layout, so checkpoints do too
        return model(x.contiguous(memory_format=torch.channels_last))

    def save(self, model: nn.Module, out: Path) -> None:
        """The checkpoint layout the image family publishes from: the state dict as
        `model.safetensors`, never a pickle."""
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(out / "model.safetensors"))

    def restore(self, model: nn.Module, ckpt: Path) -> None:
        """Load `save`'s weights strictly when Ray Train restarts the worker group from a
        checkpoint."""
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(ckpt / "model.safetensors")), strict=True)
