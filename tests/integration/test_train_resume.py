"""Issue #8 item 6 and #16 item 5: one of two Ray Train workers killed after checkpoint k;
the worker group resumes from k and finishes."""

from __future__ import annotations

import re
import tempfile
import threading
import time
from pathlib import Path

import pytest
from faults import kill_one_actor

from raylabel.config import load_config
from raylabel.demo.images import ImageDemoSpec, write_image_demo
from raylabel.models.predictor import load_model_dir
from raylabel.train import train

pytestmark = pytest.mark.slow
CKPT = re.compile(r"checkpoint_epoch_(\d+)")


def _kill_after_checkpoint(scratch: Path, killed: dict[str, int], timeout_s: float = 240) -> None:
    """Wait until Ray Train has registered the epoch-1 checkpoint (its snapshot names it),
    then SIGKILL the training worker process."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        for snap in scratch.glob("raylabel-train-*/ray_train/*/checkpoint_manager_snapshot.json"):
            try:
                epochs = [int(m) for m in CKPT.findall(snap.read_text())]
            except OSError:
                continue
            if epochs:
                killed["after_epoch"] = max(epochs)
                killed["pid"] = kill_one_actor("RayTrainWorker")
                return
        time.sleep(0.02)


def test_killed_train_worker_resumes_from_last_checkpoint(
    ray_cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = ImageDemoSpec(
        n_seed_per_class=40, n_drop=1, image_size=32, classes=("circle", "square"), n_bad_items=0
    )
    data = write_image_demo(tmp_path / "data", spec)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where train() keeps Ray Train's run
    epochs = 4
    cfg = load_config(
        [],
        [
            f"seed.path={data.seed_dir}",
            f"output.root={tmp_path / 'out'}",
            "model.image_size=32",
            f"train.epochs={epochs}",
            "train.min_steps=0",
            "train.calibration=holdout",  # Ray Train's resume is the subject, not calibration
            "train.num_workers=2",  # one of the two is killed
            "train.batch_size=8",
            "train.max_failures=2",  # one spare: a worker group slow to start on a loaded box
            "train.checkpoint_every=1",
            "train.use_feedback=false",
            "qc.min_support=2",
        ],
    )
    killed: dict[str, int] = {}
    killer = threading.Thread(target=_kill_after_checkpoint, args=(scratch, killed), daemon=True)
    killer.start()
    result = train(cfg)
    killer.join(timeout=5)

    k = killed.get("after_epoch")
    assert k is not None and killed.get("pid"), "the worker was never killed"
    history = result.card.training["history"]
    assert [int(h["epoch"]) for h in history] == list(range(1, epochs + 1))  # each epoch once
    resumed = [h for h in history if "resumed_from" in h]
    # resumed exactly once, right after the last checkpoint registered before the kill
    assert len(resumed) == 1, history
    assert int(resumed[0]["resumed_from"]) >= k
    assert int(resumed[0]["epoch"]) == int(resumed[0]["resumed_from"]) + 1 <= epochs
    _, card = load_model_dir(Path(result.model_uri))  # the published model loads
    assert card.classes == ["circle", "square"]
