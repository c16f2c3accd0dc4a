"""The per-worker training loop (runs inside Ray Train workers, DDP across them)."""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


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


def sample_weight(batch: Any) -> dict[str, torch.Tensor]:
    """Per-row loss weights when the rows carry them (pseudo-labels weigh less than humans)."""
    if "weight" not in batch:
        return {}
    return {"sample_weight": torch.as_tensor(np.asarray(batch["weight"]), dtype=torch.float32)}


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
        if self.nbytes > self.cap_bytes:
            return
        self.nbytes += sum(t.numel() * t.element_size() for t in inputs.values())
        self.parts.append((inputs, y))
        if self.nbytes > self.cap_bytes:
            self.parts.clear()  # too big to keep: this shard streams every epoch

    def seal(self) -> None:
        if self.parts and self.nbytes <= self.cap_bytes:
            keys = self.parts[0][0].keys()
            inputs = {k: torch.cat([p[0][k] for p in self.parts]) for k in keys}
            self.full = (inputs, torch.cat([p[1] for p in self.parts]))
        self.parts.clear()

    def batches(self, bs: int, shuffle_seed: int | None) -> Any:
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

        from raylabel.models import build_image_model, load_pretrained_backbone

        self.augment = config["augment"]
        self.gen = torch.Generator().manual_seed(int(config["seed"]) * 1000 + rank)
        self.model = build_image_model(config["arch"], config["num_classes"], config["dropout"])
        if config.get("pretrained"):
            skipped = load_pretrained_backbone(self.model, load_file(config["pretrained"]))
            if rank == 0:
                print(f"[raylabel] pretrained weights loaded; re-initialised: {skipped}")
        self.cache_bytes = int(config.get("worker_cache_mb", 0)) * 2**20
        self.caches: dict[int, ShardCache] = {}

    def batches(self, shard: Any, bs: int, shuffle_seed: int | None) -> Any:
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
        x = inputs["x"]
        if train:
            x = _augment(x, self.augment, self.gen)
        return model(x)

    def save(self, model: nn.Module, out: Path) -> None:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(out / "model.safetensors"))

    def restore(self, model: nn.Module, ckpt: Path) -> None:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(ckpt / "model.safetensors")), strict=True)


def text_batches(shard: Any, bs: int, shuffle_seed: int | None, pad_id: int) -> Any:
    """Token-id batches padded to their own longest item, with loss weights when present;
    shared by every text architecture so they train on identical batches."""
    from raylabel.text import pad

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
    from raylabel.text import pad

    ids, mask = pad(list(batch["input_ids"]), pad_id)
    return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}


def make_task(config: dict[str, Any], rank: int) -> Any:
    """The adapter for the configured modality and architecture (Ray Train and fold tasks)."""
    if config.get("modality") == "text" and config.get("arch") == "rnn":
        from raylabel.text_rnn import RnnTextTask

        return RnnTextTask(config, rank)
    if config.get("modality") == "text":
        return TextTask(config, rank)
    return ImageTask(config, rank)


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
        return text_batches(shard, bs, shuffle_seed, self.pad_id)

    def inputs_from_numpy(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return text_inputs(batch, self.pad_id)

    def forward(self, model: nn.Module, inputs: dict[str, torch.Tensor], train: bool) -> Any:
        return model(**inputs).logits

    def save(self, model: nn.Module, out: Path) -> None:
        model.save_pretrained(str(out / "hf"), safe_serialization=True)
        self.tokenizer.save_pretrained(str(out / "hf"))

    def restore(self, model: nn.Module, ckpt: Path) -> None:
        from safetensors.torch import load_model

        # save_pretrained may drop tied weights; they are re-tied by the model itself
        load_model(model, str(ckpt / "hf" / "model.safetensors"), strict=False)


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
    task = make_task(config, rank)
    model = task.model
    # a restarted worker group (train.max_failures) resumes from the last reported checkpoint
    resume = ray.train.get_checkpoint()
    if resume is not None:
        with resume.as_directory() as ckpt_dir:
            task.restore(model, Path(ckpt_dir))
    model = ray.train.torch.prepare_model(model)
    device = ray.train.torch.get_device()
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=float(config["lr"]),
        weight_decay=float(config["weight_decay"]),
    )
    world = max(1, ctx.get_world_size())
    bs = int(config["batch_size"])
    n_train = int(config["n_train"])
    epochs = effective_epochs(int(config["epochs"]), n_train, world, bs, config.get("min_steps", 0))
    steps_per_epoch = max(1, math.ceil(n_train / world / bs))
    total_steps = steps_per_epoch * epochs
    warmup = float(config["warmup_fraction"])
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: lr_factor(step, total_steps, warmup)
    )
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    weighted = bool(config.get("sample_weights"))
    train_shard = ray.train.get_dataset_shard("train")
    # cross-fitted calibration trains on every seed item: there is no validation split
    val_shard = ray.train.get_dataset_shard("val") if int(config["n_val"]) else None
    history: list[dict[str, float]] = []
    start_epoch = 0
    if resume is not None:
        with resume.as_directory() as ckpt_dir:
            start_epoch, history = _restore_state(Path(ckpt_dir), opt, sched)
        if rank == 0:
            print(f"[raylabel] resumed training after epoch {start_epoch}", flush=True)
    every = max(1, int(config.get("checkpoint_every", 1)))

    for epoch in range(start_epoch, epochs):
        model.train()
        epoch_started = time.perf_counter()
        tot_loss, tot_ok, tot_n = 0.0, 0.0, 0.0
        for inputs, y in task.batches(train_shard, bs, shuffle_seed=epoch + rank):
            inputs = {k: v.to(device) for k, v in inputs.items()}
            w = inputs.pop("sample_weight", None)
            if weighted and w is None:
                raise RuntimeError(f"{type(task).__name__} batches carry no sample weights")
            y = y.to(device)
            opt.zero_grad(set_to_none=True)
            logits = task.forward(model, inputs, train=True)
            loss = weighted_loss(loss_fn(logits, y), w)
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
            "train_s": time.perf_counter() - epoch_started,  # this worker's training pass
        }
        if resume is not None and epoch == start_epoch:
            metrics["resumed_from"] = start_epoch  # the card's history shows the restart
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
            if last or (epoch + 1) % every == 0:
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
                _save_state(tmp, epoch + 1, opt, sched)
                checkpoint = ray.train.Checkpoint.from_directory(str(tmp))
        ray.train.report(
            metrics,
            checkpoint=checkpoint,
            checkpoint_dir_name=f"checkpoint_epoch_{epoch + 1:04d}" if checkpoint else None,
            delete_local_checkpoint_after_upload=checkpoint is not None,
        )


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
