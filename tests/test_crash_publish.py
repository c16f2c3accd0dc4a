"""A labeling run killed part-way publishes nothing; the rerun is complete, no duplicates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from raylabel import layout
from raylabel.demo_images import ImageDemoSpec, write_image_demo
from raylabel.storage import StorageOptions

pytestmark = pytest.mark.slow


def _raylabel(*args: str) -> list[str]:
    return [sys.executable, "-m", "raylabel.cli", *args]


def test_killed_driver_leaves_no_result_and_rerun_completes(tmp_path: Path) -> None:
    spec = ImageDemoSpec(n_seed_per_class=8, n_drop=500, image_size=32, classes=("circle", "cross"))
    data = write_image_demo(tmp_path / "data", spec)
    out = tmp_path / "out"
    common = [
        f"seed.path={data.seed_dir}",
        f"drop.path={data.drop_dir}",
        f"output.root={out}",
        "model.image_size=32",
        "train.epochs=1",
        "train.num_workers=1",
        "qc.min_support=2",
        "drop.name=crashy",
        "review.size=10",
    ]
    env = {**os.environ, "RAY_ADDRESS": ""}
    env.pop("RAY_ADDRESS")
    subprocess.run(
        _raylabel("train", *common), check=True, env=env, timeout=600, capture_output=True
    )

    # small files and batches so output appears long before the run could finish
    slow = [
        *common,
        "output.rows_per_file=20",
        "infer.batch_size=8",
        "infer.preprocess_batch_size=8",
    ]
    proc = subprocess.Popen(
        _raylabel("label", *slow),
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    runs = out / "runs" / "crashy"
    deadline = time.time() + 300
    while time.time() < deadline and not list(runs.glob("r-*/labels/*.parquet")):
        assert proc.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.2)
    assert list(runs.glob("r-*/labels/*.parquet")), "no partial output appeared"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started
    proc.wait(timeout=60)

    opts = StorageOptions()
    (partial,) = [p for p in runs.iterdir() if p.name.startswith("r-")]
    assert not (partial / "_SUCCESS").exists()
    assert not (runs / "LATEST").exists()
    assert layout.latest_run(str(out), "crashy", opts) is None  # readers see no result

    done = subprocess.run(
        _raylabel("label", *common), env=env, timeout=600, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = layout.latest_run(str(out), "crashy", opts)
    assert run_id and run_id != partial.name
    labels = pq.read_table(runs / run_id / "labels")
    errors = pq.read_table(runs / run_id / "errors")
    ids = labels.column("item_id").to_pylist() + errors.column("item_id").to_pylist()
    assert len(ids) == len(set(ids)) == 502  # every item exactly once
