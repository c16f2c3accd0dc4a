"""The per-worker training loop (runs inside Ray Train workers, DDP across them)."""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from raylabel.fit.optim import make_optimizer
from raylabel.models.hf_text import TextTask
from raylabel.models.image_task import ImageTask
from raylabel.models.objective import Objective


def lr_factor(step: int, total: int, warmup_fraction: float) -> float:
    """Linear warm-up then cosine decay to zero; flat at the end if a shard runs long."""
    warm = max(1, int(total * warmup_fraction))
    if step < warm:
        return (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total - warm))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def effective_epochs(epochs: int, n_train: int, world: int, batch_size: int, min_steps: int) -> int:
    """Epochs to run so a worker takes at least ``min_steps`` optimizer steps: an epoch-based
    schedule gives a tiny seed almost no steps (160 items at batch 64: 3 a epoch)."""
    per_epoch = max(1, math.ceil(max(n_train, 1) / max(world, 1) / max(batch_size, 1)))
    return max(int(epochs), math.ceil(max(min_steps, 0) / per_epoch))


def weighted_loss(losses: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean per-row loss, weighted when weights are given (all ones: the plain mean)."""
    if weight is None:
        return losses.mean()
    return (losses * weight).sum() / weight.sum().clamp_min(1e-12)


def _all_sum(values: list[float]) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t.tolist()


def make_task(config: dict[str, Any], rank: int) -> Any:
    """The training adapter of the configured family (Ray Train workers and fold tasks)."""
    from raylabel.models.registry import family_for

    make = family_for(str(config.get("modality", "image")), str(config["arch"])).make_task
    if config.get("head_only"):  # a frozen body: the head trains on cached features
        from raylabel.models.head_task import HeadTask, build_frozen

        return HeadTask(build_frozen(make, config, rank))
    return make(config, rank)


@dataclass
class _Worker:
    """One Ray Train worker's training state, set up once and carried through the epochs."""

    config: dict[str, Any]
    rank: int
    task: Any
    model: nn.Module
    opt: torch.optim.Optimizer
    sched: Any
    device: torch.device
    epochs: int
    train_shard: Any
    val_shard: Any
    resumed: bool
    start_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def batch_size(self) -> int:
        return int(self.config["batch_size"])


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train's per-worker function: DDP over the workers, a checkpoint every
    `train.checkpoint_every` epochs, and a restarted worker group resumes from the last one."""
    import ray.train

    w = _setup_worker(config)
    for epoch in range(w.start_epoch, w.epochs):
        metrics = _train_epoch(w, epoch)
        checkpoint = _validate_and_checkpoint(w, epoch, metrics) if w.rank == 0 else None
        ray.train.report(
            metrics,
            checkpoint=checkpoint,
            checkpoint_dir_name=f"checkpoint_epoch_{epoch + 1:04d}" if checkpoint else None,
            delete_local_checkpoint_after_upload=checkpoint is not None,
        )


def _setup_worker(config: dict[str, Any]) -> _Worker:
    """Model, optimizer and schedule (restored when the group restarted), and the shards."""
    import ray.train
    import ray.train.torch
    from ray.data import DataContext

    # one bar per epoch per worker would drown the driver's log; the driver reports epochs
    DataContext.get_current().enable_progress_bars = False
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    torch.set_num_threads(int(config["threads"]))
    torch.manual_seed(int(config["seed"]))
    task = make_task(config, rank)
    resume = ray.train.get_checkpoint()
    if resume is not None:
        with resume.as_directory() as ckpt_dir:
            task.restore(task.model, Path(ckpt_dir))
    model = ray.train.torch.prepare_model(task.model)
    opt = make_optimizer(model, task, config)
    world = max(1, ctx.get_world_size())
    bs, n_train = int(config["batch_size"]), int(config["n_train"])
    epochs = effective_epochs(int(config["epochs"]), n_train, world, bs, config.get("min_steps", 0))
    total_steps = max(1, math.ceil(n_train / world / bs)) * epochs
    warmup = float(config["warmup_fraction"])
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: lr_factor(step, total_steps, warmup)
    )
    w = _Worker(
        config, rank, task, model, opt, sched, ray.train.torch.get_device(), epochs,
        ray.train.get_dataset_shard("train"),
        # cross-fitted calibration trains on every seed item: there is no validation split
        ray.train.get_dataset_shard("val") if int(config["n_val"]) else None,
        resumed=resume is not None,
    )  # fmt: skip
    if resume is not None:
        with resume.as_directory() as ckpt_dir:
            w.start_epoch, w.history = _restore_state(Path(ckpt_dir), opt, sched)
        if rank == 0:
            print(f"[raylabel] resumed training after epoch {w.start_epoch}", flush=True)
    return w


def _train_epoch(w: _Worker, epoch: int) -> dict[str, float]:
    """One pass over this worker's shard; loss and accuracy summed over all workers."""
    w.model.train()
    epoch_started = time.perf_counter()
    objective = Objective.from_config(w.config)
    weighted = bool(w.config.get("sample_weights"))
    tot_loss, tot_ok, tot_n = 0.0, 0.0, 0.0
    for inputs, y in w.task.batches(w.train_shard, w.batch_size, shuffle_seed=epoch + w.rank):
        inputs = {k: v.to(w.device) for k, v in inputs.items()}
        weight = inputs.pop("sample_weight", None)
        if weighted and weight is None:
            raise RuntimeError(f"{type(w.task).__name__} batches carry no sample weights")
        y = y.to(w.device)
        w.opt.zero_grad(set_to_none=True)
        logits = w.task.forward(w.model, inputs, train=True)
        loss = weighted_loss(objective.per_item_loss(logits, y), weight)
        loss.backward()
        w.opt.step()
        w.sched.step()
        tot_loss += float(loss.item()) * len(y)
        tot_ok += objective.n_correct(logits.detach(), y)
        tot_n += len(y)
    tot_loss, tot_ok, tot_n = _all_sum([tot_loss, tot_ok, tot_n])
    metrics: dict[str, float] = {
        "epoch": epoch + 1,
        "train_loss": tot_loss / max(tot_n, 1),
        "train_acc": tot_ok / max(tot_n, 1),
        "train_items": tot_n,
        "train_s": time.perf_counter() - epoch_started,  # this worker's training pass
    }
    if w.resumed and epoch == w.start_epoch:
        metrics["resumed_from"] = w.start_epoch  # the card's history shows the restart
    return metrics


def _validate_and_checkpoint(w: _Worker, epoch: int, metrics: dict[str, float]) -> Any:
    """Rank 0: validation figures into the history, and a checkpoint when one is due."""
    import ray.train
    from safetensors.torch import save_file

    inner = w.model.module if hasattr(w.model, "module") else w.model
    logits_v, labels_v = _evaluate(w.task, inner, w.val_shard, w.batch_size, w.device)
    if len(labels_v):
        lv, yv = torch.from_numpy(logits_v), torch.from_numpy(labels_v).long()
        objective = Objective.from_config(w.config)
        metrics["val_loss"] = objective.mean_loss(lv, yv)
        metrics["val_acc"] = objective.n_correct(lv, yv) / len(yv)
    metrics["val_items"] = float(len(labels_v))
    print(
        f"[raylabel] epoch {epoch + 1}/{w.epochs} train_loss={metrics['train_loss']:.4f} "
        f"train_acc={metrics['train_acc']:.3f} "
        f"val_loss={metrics.get('val_loss', float('nan')):.4f} "
        f"val_acc={metrics.get('val_acc', float('nan')):.3f}",
        flush=True,
    )
    expected = float(w.config["n_train"]) + float(w.config["n_val"])
    metrics["seed_unreadable"] = max(0.0, expected - metrics["train_items"] - len(labels_v))
    w.history.append(metrics)
    every = max(1, int(w.config.get("checkpoint_every", 1)))
    if epoch != w.epochs - 1 and (epoch + 1) % every:
        return None
    tmp = Path(tempfile.mkdtemp(prefix="raylabel-ckpt-"))
    w.task.save(inner, tmp)
    val = {
        "logits": torch.from_numpy(np.ascontiguousarray(logits_v)),
        "labels": torch.from_numpy(labels_v.astype(np.int64)),
    }
    save_file(val, str(tmp / "val_logits.safetensors"))
    (tmp / "history.json").write_text(json.dumps(w.history))
    _save_state(tmp, epoch + 1, w.opt, w.sched)
    return ray.train.Checkpoint.from_directory(str(tmp))


def _save_state(out: Path, epoch: int, opt: torch.optim.Optimizer, sched: Any) -> None:
    """Optimizer tensors as safetensors, everything else as JSON: a checkpoint never holds a
    pickle, so resuming cannot run code even though checkpoints live in shared storage."""
    from safetensors.torch import save_file

    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, param_state in sd["state"].items():
        for name, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"{idx}/{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    save_file(tensors, str(out / "optimizer.safetensors"))
    sched_state = {k: v for k, v in sched.state_dict().items() if k != "lr_lambdas"}
    body = {
        "epoch": epoch,
        "param_groups": sd["param_groups"],
        "optimizer_scalars": scalars,
        "scheduler": sched_state,
    }
    (out / "train_state.json").write_text(json.dumps(body))


def _restore_state(
    ckpt: Path, opt: torch.optim.Optimizer, sched: Any
) -> tuple[int, list[dict[str, float]]]:
    """(epochs already done, their history) after loading optimizer and schedule state."""
    from safetensors.torch import load_file

    body = json.loads((ckpt / "train_state.json").read_text())
    state: dict[int, dict[str, Any]] = {}
    for key, value in load_file(str(ckpt / "optimizer.safetensors")).items():
        idx, name = key.split("/", 1)
        state.setdefault(int(idx), {})[name] = value
    for idx, extra in body["optimizer_scalars"].items():
        state.setdefault(int(idx), {}).update(extra)
    opt.load_state_dict({"state": state, "param_groups": body["param_groups"]})
    sched_state = dict(body["scheduler"])
    sched_state["lr_lambdas"] = [None] * len(opt.param_groups)
    sched.load_state_dict(sched_state)
    history = json.loads((ckpt / "history.json").read_text())
    return int(body["epoch"]), history


@torch.inference_mode()
def _evaluate(
    task: ImageTask | TextTask, model: nn.Module, shard: Any, batch_size: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    if shard is None:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    model.eval()
    outs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for inputs, y in task.batches(shard, batch_size, shuffle_seed=None):
        inputs = {k: v.to(device) for k, v in inputs.items() if k != "sample_weight"}
        outs.append(task.forward(model, inputs, train=False).float().cpu().numpy())
        ys.append(y.cpu().numpy())
    if not outs:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return np.concatenate(outs), np.concatenate(ys).astype(np.int64)
