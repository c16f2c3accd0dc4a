"""Scoring the seed with a zero-shot model (`model.arch=clip`): the train stage's stand-in
for fold models when nothing trains.

Every seed item is out of sample for a model that never trained, so one Ray task scores
them all; their logits calibrate the temperature and thresholds exactly as cross-fitted
fold predictions would, and the task returns the built model's checkpoint files.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from raylabel.config import Config
from raylabel.fit import folds
from raylabel.inputs.sources import SourcePlan
from raylabel.io.storage import StorageOptions


def score_seed(
    cfg: Config, plan: SourcePlan, classes: list[str], opts: StorageOptions
) -> tuple[folds.OutOfFold, dict[str, bytes]]:
    """(every seed row's logits as one "fold", the zero-shot model's checkpoint files)."""
    import ray

    listing = plan.listing
    assert listing is not None
    everything = np.zeros(listing.num_rows, dtype=np.int32)
    [ds] = folds.fold_datasets(cfg, plan, classes, everything, opts, 1)
    cpus, threads = folds.fold_cpus(cfg.train.cpus_per_worker)
    config = folds.loop_config(cfg, classes, threads, 1, None, use_gpu=cfg.train.use_gpu)
    remote = ray.remote(_score).options(
        num_cpus=cpus,
        num_gpus=1.0 if cfg.train.use_gpu else 0.0,
        max_retries=cfg.train.max_failures,
    )
    res = ray.get(remote.remote(config, ds))
    logits = np.full((listing.num_rows, len(classes)), np.nan)
    fold = np.full(listing.num_rows, -1, dtype=np.int32)
    if len(res["rows"]):
        logits[res["rows"]] = res["logits"]
        fold[res["rows"]] = 0
    return folds.OutOfFold(logits, fold, steps=[0]), res["files"]


def _score(config: dict[str, Any], ds: Any) -> dict[str, Any]:
    import torch

    from raylabel.fit.fold_model import checkpoint_files, predict_rows, task_device
    from raylabel.fit.loop import make_task

    torch.set_num_threads(int(config["threads"]))
    task = make_task(config, 0)
    device = task_device(config)
    rows, logits = predict_rows(task, task.model.to(device), ds, int(config["batch_size"]), device)
    return {"rows": rows, "logits": logits, "files": checkpoint_files(task, task.model.cpu())}
