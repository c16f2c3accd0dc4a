"""One fold model: train on k-1 folds, predict the held-out fold (the body of a Ray task).

Shared by the seed audit and cross-fitted calibration. Why a plain task and not a
TorchTrainer per fold: the k fold models are small, independent and run side by side; a
task per fold keeps them parallel on any cluster shape without k worker groups. The model,
batches, augmentation and step schedule come from the same adapters and functions the real
training uses (`train_loop.make_task`, `effective_epochs`, `lr_factor`), so a fold model
is the model the nightly job would train, on four fifths of the seed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

Batches = Callable[[int], Iterable[tuple[dict[str, Any], Any]]]


def fit_model(
    task: Any, config: dict[str, Any], batches: Batches, n_train: int, device: Any
) -> int:
    """Train ``task.model`` in place with the production schedule; returns optimizer steps.

    ``batches(epoch)`` yields ``(inputs, y)``; the step budget is ``train.epochs``, raised to
    ``train.min_steps`` for small seeds, with the same warm-up and cosine decay as Ray Train.
    """
    import torch

    from raylabel.fit.loop import effective_epochs, lr_factor, weighted_loss
    from raylabel.fit.optim import make_optimizer
    from raylabel.models.objective import Objective

    model = task.model.to(device)
    bs = int(config["batch_size"])
    epochs = effective_epochs(
        int(config["epochs"]), n_train, 1, bs, int(config.get("min_steps", 0))
    )
    opt = make_optimizer(model, task, config)
    total = max(1, -(-n_train // bs)) * epochs
    warmup = float(config["warmup_fraction"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, warmup))
    objective = Objective.from_config(config)
    steps = 0
    for epoch in range(epochs):
        model.train()
        for inputs, y in batches(epoch):
            inputs = {k: v.to(device) for k, v in inputs.items()}
            w = inputs.pop("sample_weight", None)
            y = y.to(device)
            opt.zero_grad(set_to_none=True)
            logits = task.forward(model, inputs, train=True)
            loss = weighted_loss(objective.per_item_loss(logits, y), w)
            loss.backward()
            opt.step()
            sched.step()
            steps += 1
    model.eval()
    return steps


def task_device(config: dict[str, Any]) -> Any:
    """The device a fold-sized Ray task computes on: the GPU when asked for and present."""
    import torch

    return torch.device("cuda" if config.get("use_gpu") and torch.cuda.is_available() else "cpu")


def fit_fold(
    config: dict[str, Any], fold: int, train_ds: Any, held_ds: Any, keep_model: bool = False
) -> dict[str, Any]:
    """Out-of-fold logits for the held-out rows (row index, logits) and, when asked, the
    fold model's checkpoint files (name -> bytes) for the labeling ensemble."""
    import logging

    import torch
    from ray.data import DataContext

    from raylabel.fit.loop import make_task

    DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # one line per epoch is noise here
    torch.set_num_threads(int(config["threads"]))
    torch.manual_seed(int(config["seed"]) * 1000 + fold)
    task = make_task(config, fold)
    device = task_device(config)
    bs = int(config["batch_size"])
    steps = fit_model(
        task,
        config,
        lambda epoch: task.batches(train_ds, bs, shuffle_seed=fold * 1000 + epoch),
        int(config["n_train"]),
        device,
    )
    rows, logits = predict_rows(task, task.model, held_ds, bs, device)
    out: dict[str, Any] = {"fold": fold, "rows": rows, "logits": logits, "steps": steps}
    if keep_model:
        out["files"] = checkpoint_files(task, task.model.cpu())
    return out


def checkpoint_files(task: Any, model: Any) -> dict[str, bytes]:
    """The task's checkpoint layout as bytes (what `train_loop` checkpoints hold)."""
    with tempfile.TemporaryDirectory(prefix="raylabel-fold-") as tmp:
        root = Path(tmp)
        task.save(model, root)
        return {
            str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
        }


def predict_rows(
    task: Any, model: Any, ds: Any, bs: int, device: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a dataset's rows; row ids travel with the batch, so no ordering assumption
    ties logits to items."""
    import torch

    model.eval()
    rows: list[np.ndarray] = []
    logits: list[np.ndarray] = []
    with torch.inference_mode():
        for batch in ds.iter_batches(batch_size=bs, batch_format="numpy"):
            inputs = task.inputs_from_numpy(batch)
            inputs = {k: v.to(device) for k, v in inputs.items()}
            logits.append(task.forward(model, inputs, train=False).float().cpu().numpy())
            rows.append(np.asarray(batch["row"], dtype=np.int64))
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float64)
    return np.concatenate(rows), np.concatenate(logits).astype(np.float64)
