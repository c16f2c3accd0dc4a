"""One fold of the seed audit: train on k-1 folds, predict the held-out fold (a Ray task).

Why a plain task and not a TorchTrainer per fold: the k fold models are small, independent
and run side by side; a task per fold keeps them parallel on any cluster shape without k
worker groups. The model, the batches and the augmentation come from the same task
adapters the real training uses (`train_loop.ImageTask` / `TextTask`), so the audit judges
the seed with the model the nightly job would train.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def fit_fold(config: dict[str, Any], fold: int, train_ds: Any, held_ds: Any) -> dict[str, Any]:
    """Out-of-sample softmax probabilities for the held-out rows (row index, probs)."""
    import logging

    import torch
    from ray.data import DataContext
    from torch import nn

    from raylabel.train_loop import ImageTask, TextTask, lr_factor

    DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # one line per epoch is noise here
    torch.set_num_threads(int(config["threads"]))
    torch.manual_seed(int(config["seed"]) * 1000 + fold)
    text = config.get("modality") == "text"
    task: ImageTask | TextTask = TextTask(config, fold) if text else ImageTask(config, fold)
    device = torch.device("cuda" if config.get("use_gpu") and torch.cuda.is_available() else "cpu")
    model = task.model.to(device)
    bs = int(config["batch_size"])
    epochs = int(config["epochs"])
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=float(config["lr"]),
        weight_decay=float(config["weight_decay"]),
    )
    total = max(1, math.ceil(int(config["n_train"]) / bs)) * epochs
    warmup = float(config["warmup_fraction"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, warmup))
    loss_fn = nn.CrossEntropyLoss()
    seen = 0
    for epoch in range(epochs):
        model.train()
        seen = 0
        for item in task.batches(train_ds, bs, shuffle_seed=fold * 1000 + epoch):
            inputs, y = item[0], item[1]
            inputs = {k: v.to(device) for k, v in inputs.items()}
            y = y.to(device)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(task.forward(model, inputs, train=True), y)
            loss.backward()
            opt.step()
            sched.step()
            seen += len(y)
    rows, probs = _predict(task, model, held_ds, bs, device, text)
    return {"fold": fold, "rows": rows, "probs": probs, "train_items": seen}


def _predict(
    task: Any, model: Any, ds: Any, bs: int, device: Any, text: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Row ids travel with the batch, so no ordering assumption ties probs to items."""
    import torch

    model.eval()
    rows: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    with torch.inference_mode():
        for batch in ds.iter_batches(batch_size=bs, batch_format="numpy"):
            if text:
                from raylabel.text import pad

                ids, mask = pad(list(batch["input_ids"]), task.pad_id)
                inputs = {
                    "input_ids": torch.from_numpy(ids).to(device),
                    "attention_mask": torch.from_numpy(mask).to(device),
                }
            else:
                inputs = {"x": torch.from_numpy(np.ascontiguousarray(batch["pixels"])).to(device)}
            logits = task.forward(model, inputs, train=False).float()
            probs.append(torch.softmax(logits, dim=1).cpu().numpy().astype(np.float64))
            rows.append(np.asarray(batch["row"], dtype=np.int64))
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float64)
    return np.concatenate(rows), np.concatenate(probs)
