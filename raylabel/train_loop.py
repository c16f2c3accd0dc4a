"""The per-worker training loop (runs inside Ray Train workers, DDP across them)."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


def _augment(x: torch.Tensor, mode: str, gen: torch.Generator) -> torch.Tensor:
    """Label-preserving transforms: flips and small shifts for most images; quarter turns
    too when the classes do not depend on orientation (shapes, cells, aerial tiles)."""
    if mode == "none":
        return x
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
    if mode == "flip_rot90":
        x = torch.rot90(x, int(torch.randint(0, 4, (1,), generator=gen)), (2, 3))
    pad = max(1, x.shape[-1] // 16)
    dx, dy = (int(v) for v in torch.randint(-pad, pad + 1, (2,), generator=gen))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def lr_factor(step: int, total: int, warmup_fraction: float) -> float:
    """Linear warm-up then cosine decay to zero; flat at the end if a shard runs long."""
    warm = max(1, int(total * warmup_fraction))
    if step < warm:
        return (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total - warm))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _all_sum(values: list[float]) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t.tolist()


class ImageTask:
    """Image batches: uint8 pixels, augmented on the fly."""

    def __init__(self, config: dict[str, Any], rank: int) -> None:
        from safetensors.torch import load_file

        from raylabel.models import build_image_model, load_pretrained_backbone

        self.augment = config["augment"]
        self.gen = torch.Generator().manual_seed(int(config["seed"]) * 1000 + rank)
        self.model = build_image_model(config["arch"], config["num_classes"], config["dropout"])
        if config.get("pretrained"):
            skipped = load_pretrained_backbone(self.model, load_file(config["pretrained"]))
            if rank == 0:
                print(f"[raylabel] pretrained weights loaded; re-initialised: {skipped}")

    def batches(self, shard: Any, bs: int, shuffle_seed: int | None) -> Any:
        kwargs = {}
        if shuffle_seed is not None:
            kwargs = {"local_shuffle_buffer_size": 4 * bs, "local_shuffle_seed": shuffle_seed}
        for batch in shard.iter_torch_batches(batch_size=bs, **kwargs):
            yield {"x": batch["pixels"]}, batch["label_index"].long()

    def forward(self, model: nn.Module, inputs: dict[str, torch.Tensor], train: bool) -> Any:
        x = inputs["x"]
        if train:
            x = _augment(x, self.augment, self.gen)
        return model(x)

    def save(self, model: nn.Module, out: Path) -> None:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(out / "model.safetensors"))


class TextTask:
    """Token-id batches padded per batch; a transformers sequence classifier."""

    def __init__(self, config: dict[str, Any], rank: int) -> None:
        from raylabel.layout import sync_dir
        from raylabel.text import build_text_model, freeze_encoder, load_tokenizer

        local = sync_dir(config["pretrained_uri"], config["storage"])
        self.tokenizer = load_tokenizer(str(local))
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        self.model = build_text_model(str(local), list(config["classes"]), config["dropout"])
        if config.get("freeze_encoder"):
            freeze_encoder(self.model)

    def batches(self, shard: Any, bs: int, shuffle_seed: int | None) -> Any:
        from raylabel.text import pad

        kwargs: dict[str, Any] = {}
        if shuffle_seed is not None:
            kwargs = {"local_shuffle_buffer_size": 4 * bs, "local_shuffle_seed": shuffle_seed}
        for batch in shard.iter_batches(batch_size=bs, batch_format="numpy", **kwargs):
            ids, mask = pad(list(batch["input_ids"]), self.pad_id)
            y = torch.from_numpy(np.asarray(batch["label_index"], dtype=np.int64))
            yield {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}, y

    def forward(self, model: nn.Module, inputs: dict[str, torch.Tensor], train: bool) -> Any:
        return model(**inputs).logits

    def save(self, model: nn.Module, out: Path) -> None:
        model.save_pretrained(str(out / "hf"), safe_serialization=True)
        self.tokenizer.save_pretrained(str(out / "hf"))


def train_loop_per_worker(config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch
    from ray.data import DataContext
    from safetensors.torch import save_file

    # one bar per epoch per worker would drown the driver's log; the driver reports epochs
    DataContext.get_current().enable_progress_bars = False
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    torch.set_num_threads(int(config["threads"]))
    torch.manual_seed(int(config["seed"]))
    task: ImageTask | TextTask = (
        TextTask(config, rank) if config.get("modality") == "text" else ImageTask(config, rank)
    )
    model = task.model
    model = ray.train.torch.prepare_model(model)
    device = ray.train.torch.get_device()
    epochs = int(config["epochs"])
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=float(config["lr"]),
        weight_decay=float(config["weight_decay"]),
    )
    world = max(1, ctx.get_world_size())
    steps_per_epoch = max(1, math.ceil(int(config["n_train"]) / world / int(config["batch_size"])))
    total_steps = steps_per_epoch * epochs
    warmup = float(config["warmup_fraction"])
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: lr_factor(step, total_steps, warmup)
    )
    loss_fn = nn.CrossEntropyLoss()
    train_shard = ray.train.get_dataset_shard("train")
    val_shard = ray.train.get_dataset_shard("val")
    bs = int(config["batch_size"])
    history: list[dict[str, float]] = []

    for epoch in range(epochs):
        model.train()
        tot_loss, tot_ok, tot_n = 0.0, 0.0, 0.0
        for inputs, y in task.batches(train_shard, bs, shuffle_seed=epoch + rank):
            inputs = {k: v.to(device) for k, v in inputs.items()}
            y = y.to(device)
            opt.zero_grad(set_to_none=True)
            logits = task.forward(model, inputs, train=True)
            loss = loss_fn(logits, y)
            loss.backward()
            opt.step()
            sched.step()
            tot_loss += float(loss.item()) * len(y)
            tot_ok += float((logits.argmax(1) == y).sum().item())
            tot_n += len(y)
        tot_loss, tot_ok, tot_n = _all_sum([tot_loss, tot_ok, tot_n])
        metrics: dict[str, float] = {
            "epoch": epoch + 1,
            "train_loss": tot_loss / max(tot_n, 1),
            "train_acc": tot_ok / max(tot_n, 1),
            "train_items": tot_n,
        }
        last = epoch == epochs - 1
        checkpoint = None
        if rank == 0:
            inner = model.module if hasattr(model, "module") else model
            logits_v, labels_v = _evaluate(task, inner, val_shard, bs, device)
            if len(labels_v):
                lv = torch.from_numpy(logits_v)
                yv = torch.from_numpy(labels_v).long()
                metrics["val_loss"] = float(nn.functional.cross_entropy(lv, yv))
                metrics["val_acc"] = float((lv.argmax(1) == yv).float().mean())
            metrics["val_items"] = float(len(labels_v))
            print(
                f"[raylabel] epoch {epoch + 1}/{epochs} train_loss={metrics['train_loss']:.4f} "
                f"train_acc={metrics['train_acc']:.3f} "
                f"val_loss={metrics.get('val_loss', float('nan')):.4f} "
                f"val_acc={metrics.get('val_acc', float('nan')):.3f}",
                flush=True,
            )
            expected = float(config["n_train"]) + float(config["n_val"])
            metrics["seed_unreadable"] = max(0.0, expected - tot_n - len(labels_v))
            history.append(metrics)
            if last:
                tmp = Path(tempfile.mkdtemp(prefix="raylabel-ckpt-"))
                task.save(inner, tmp)
                save_file(
                    {
                        "logits": torch.from_numpy(np.ascontiguousarray(logits_v)),
                        "labels": torch.from_numpy(labels_v.astype(np.int64)),
                    },
                    str(tmp / "val_logits.safetensors"),
                )
                (tmp / "history.json").write_text(json.dumps(history))
                checkpoint = ray.train.Checkpoint.from_directory(str(tmp))
        ray.train.report(metrics, checkpoint=checkpoint)


@torch.inference_mode()
def _evaluate(
    task: ImageTask | TextTask, model: nn.Module, shard: Any, batch_size: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    outs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for inputs, y in task.batches(shard, batch_size, shuffle_seed=None):
        inputs = {k: v.to(device) for k, v in inputs.items()}
        outs.append(task.forward(model, inputs, train=False).float().cpu().numpy())
        ys.append(y.cpu().numpy())
    if not outs:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return np.concatenate(outs), np.concatenate(ys).astype(np.int64)
