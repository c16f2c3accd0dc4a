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


def train_loop_per_worker(config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch
    from ray.data import DataContext
    from safetensors.torch import load_file, save_file

    from raylabel.models import build_image_model, load_pretrained_backbone

    # one bar per epoch per worker would drown the driver's log; the driver reports epochs
    DataContext.get_current().enable_progress_bars = False
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    torch.set_num_threads(int(config["threads"]))
    torch.manual_seed(int(config["seed"]))
    gen = torch.Generator().manual_seed(int(config["seed"]) * 1000 + rank)

    model = build_image_model(config["arch"], config["num_classes"], config["dropout"])
    if config.get("pretrained"):
        skipped = load_pretrained_backbone(model, load_file(config["pretrained"]))
        if rank == 0:
            print(f"[raylabel] pretrained weights loaded; re-initialised: {skipped}")
    model = ray.train.torch.prepare_model(model)
    device = ray.train.torch.get_device()
    epochs = int(config["epochs"])
    opt = torch.optim.AdamW(
        model.parameters(), lr=float(config["lr"]), weight_decay=float(config["weight_decay"])
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
        for batch in train_shard.iter_torch_batches(
            batch_size=bs, local_shuffle_buffer_size=4 * bs, local_shuffle_seed=epoch + rank
        ):
            x = batch["pixels"].to(device)
            y = batch["label_index"].long().to(device)
            x = _augment(x, config["augment"], gen)
            opt.zero_grad(set_to_none=True)
            logits = model(x)
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
            logits_v, labels_v = _evaluate(inner, val_shard, bs, device)
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
                state = {k: v.detach().cpu().contiguous() for k, v in inner.state_dict().items()}
                save_file(state, str(tmp / "model.safetensors"))
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
    model: nn.Module, shard: Any, batch_size: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    outs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for batch in shard.iter_torch_batches(batch_size=batch_size):
        outs.append(model(batch["pixels"].to(device)).float().cpu().numpy())
        ys.append(batch["label_index"].cpu().numpy())
    if not outs:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return np.concatenate(outs), np.concatenate(ys).astype(np.int64)
