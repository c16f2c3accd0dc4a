"""The seed's frozen-body features, computed once by Ray Data (`train.embedding_cache`).

With `model.freeze_backbone` the body's output for an item never changes during training,
so one actor pass over the decoded seed gives every fold model and the final model their
inputs; they then train only the head (`models.head_task.HeadTask`). The features stay in
the object store as blocks: nothing is collected on the driver.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from raylabel.config import Config
from raylabel.fit.data import DECODE_CPUS
from raylabel.models.head_task import FEATURE

EMBED_BATCH = 64


def uses_cache(cfg: Config) -> bool:
    """Head-only training on cached features: an image model with a frozen pretrained body."""
    return (
        cfg.modality == "image"
        and cfg.model.freeze_backbone
        and cfg.train.embedding_cache == "auto"
    )


class _Embedder:
    """Ray Data actor: the frozen image model, loaded once, turns pixels into head inputs."""

    def __init__(self, config: dict[str, Any]) -> None:
        import torch

        from raylabel.fit.fold_model import task_device
        from raylabel.models.head_task import build_frozen
        from raylabel.models.registry import family_for

        torch.set_num_threads(int(config["threads"]))
        fam = family_for("image", str(config["arch"]))
        self.task = build_frozen(fam.make_task, config, 0)
        self.device = task_device(config)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from raylabel.models.head_task import head_inputs

        out = {k: v for k, v in batch.items() if k != "pixels"}
        out[FEATURE] = head_inputs(self.task, batch["pixels"], self.device)
        return out


def embed(ds: Any, config: dict[str, Any], cpus: float, gpus: float) -> Any:
    """`ds` with its `pixels` column replaced by the head's input features, materialized. The
    actor never reserves every CPU: the small tasks that feed it must still be scheduled."""
    import ray.data

    from raylabel import cluster

    cpus = min(cpus, max(0.25, cluster.shape().cpus - 2 * DECODE_CPUS))
    return ds.map_batches(
        _Embedder,
        fn_constructor_kwargs={"config": {**config, "head_only": False}},
        batch_size=EMBED_BATCH,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=1),
        num_cpus=cpus,
        num_gpus=gpus,
    ).materialize()


def embedded_folds(
    fold_ds: list[Any], config: dict[str, Any], cpus: float, gpus: float
) -> tuple[list[Any], Any]:
    """(each fold's rows as features, every row's features): one pass over the seed for all
    k fold models, and the final model's training set when nothing else joins it."""
    k = len(fold_ds)
    tagged = [
        ds.map_batches(
            _tag_fold, fn_kwargs={"fold": f}, batch_format="pyarrow", num_cpus=DECODE_CPUS
        )
        for f, ds in enumerate(fold_ds)
    ]
    everything = embed(tagged[0].union(*tagged[1:]) if k > 1 else tagged[0], config, cpus, gpus)
    folds = [
        everything.map_batches(
            _in_fold, fn_kwargs={"fold": f}, batch_format="pyarrow"
        ).materialize()
        for f in range(k)
    ]
    # materialized here, by a small task: a lazy step left for Ray Train to run would wait for
    # a whole CPU its workers already hold
    final = everything.map_batches(
        _training_columns, batch_format="pyarrow", num_cpus=DECODE_CPUS
    ).materialize()
    return folds, final


def _training_columns(batch: pa.Table) -> pa.Table:
    return batch.select([FEATURE, "label_index"])


def _tag_fold(batch: pa.Table, fold: int) -> pa.Table:
    return batch.append_column("fold", pa.array([fold] * batch.num_rows, pa.int32()))


def _in_fold(batch: pa.Table, fold: int) -> pa.Table:
    import pyarrow.compute as pc

    return batch.filter(pc.equal(batch.column("fold"), fold)).drop_columns(["fold"])


def fit_head(
    config: dict[str, Any], train_ds: Any, val_ds: Any, cpus: float, gpus: float, retries: int
) -> tuple[dict[str, bytes], list[dict[str, float]]]:
    """The final head on cached features in one Ray task (seconds: a Ray Train worker group,
    its per-epoch reports and checkpoints would cost more than the steps). Returns the
    checkpoint files Ray Train's would hold (model, validation logits) and the history."""
    import ray

    remote = ray.remote(_fit_head).options(num_cpus=cpus, num_gpus=gpus, max_retries=retries)
    return ray.get(remote.remote(config, train_ds, val_ds))


def _fit_head(
    config: dict[str, Any], train_ds: Any, val_ds: Any
) -> tuple[dict[str, bytes], list[dict[str, float]]]:
    import io
    import time

    import torch
    from safetensors.torch import save

    from raylabel.fit.fold_model import checkpoint_files, fit_model, task_device
    from raylabel.fit.loop import make_task
    from raylabel.models.objective import Objective

    started = time.perf_counter()
    torch.set_num_threads(int(config["threads"]))
    torch.manual_seed(int(config["seed"]))
    task = make_task(config, 0)
    objective = Objective.from_config(config)
    device = task_device(config)
    bs, n = int(config["batch_size"]), int(config["n_train"])
    steps = fit_model(task, config, lambda e: task.batches(train_ds, bs, e), n, device)
    train_logits, train_y = _head_logits(task, train_ds, bs, device)
    val_logits, val_y = _head_logits(task, val_ds, bs, device) if val_ds is not None else (
        torch.zeros((0, 0)), torch.zeros(0, dtype=torch.int64)
    )  # fmt: skip
    entry: dict[str, float] = {
        "epoch": 1.0,
        "steps": float(steps),
        "train_loss": objective.mean_loss(train_logits, train_y),
        "train_acc": objective.n_correct(train_logits, train_y) / max(1, len(train_y)),
        "train_items": float(len(train_y)),
        "val_items": float(len(val_y)),
        "train_s": time.perf_counter() - started,
        "seed_unreadable": max(0.0, n + int(config["n_val"]) - len(train_y) - len(val_y)),
    }
    if len(val_y):
        entry["val_loss"] = objective.mean_loss(val_logits, val_y)
        entry["val_acc"] = objective.n_correct(val_logits, val_y) / len(val_y)
    files = checkpoint_files(task, task.model.cpu())
    buf = io.BytesIO(save({"logits": val_logits.contiguous(), "labels": val_y.contiguous()}))
    files["val_logits.safetensors"] = buf.getvalue()
    return files, [entry]


def _head_logits(task: Any, ds: Any, bs: int, device: Any) -> tuple[Any, Any]:
    import torch

    task.model.to(device).eval()
    outs, ys = [], []
    with torch.inference_mode():
        for inputs, y in task.batches(ds, bs, shuffle_seed=None):
            outs.append(task.forward(task.model, {"e": inputs["e"].to(device)}, False).float())
            ys.append(y)
    if not outs:
        return torch.zeros((0, 0)), torch.zeros(0, dtype=torch.int64)
    return torch.cat(outs).cpu(), torch.cat(ys).long()
