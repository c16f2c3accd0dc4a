"""A labeling run whose driver is killed part-way publishes nothing; the rerun is complete,
with no duplicates (issue #8 item 5).

The driver is a real `raylabel label` process joined to the session cluster, as a job's
driver is joined to a long-lived cluster; it is SIGKILLed as soon as the first labels file
lands. Ray Data blocks are cut small so output is written block by block: at the kill,
later blocks are provably still unwritten (the test checks it rather than hoping).
The rerun happens in-process on the same cluster.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faults import committed_ids, drop_ids, readable_rows, wait_for_output
from modelutil import publish_random_model

from raylabel.config import load_config
from raylabel.demo.images import ImageDemoSpec, write_image_demo
from raylabel.io import layout
from raylabel.io.storage import StorageOptions
from raylabel.label import label

pytestmark = pytest.mark.slow
CLASSES = ["circle", "cross"]


def test_killed_driver_leaves_no_result_and_rerun_completes(
    ray_cluster: None, tmp_path: Path
) -> None:
    import ray

    spec = ImageDemoSpec(
        n_seed_per_class=1, n_drop=240, image_size=32, classes=tuple(CLASSES), n_bad_items=2
    )
    data = write_image_demo(tmp_path / "data", spec)
    expected = drop_ids(data.drop_dir)
    publish_random_model(tmp_path, CLASSES)
    out = tmp_path / "out"
    common = [
        f"drop.path={data.drop_dir}",
        "infer.preprocess_batch_size=8",
        f"output.root={out}",
        "model.image_size=32",
        "drop.name=crashy",
        "review.size=10",
        "infer.num_actors=1",
        "infer.batch_size=8",
        "output.rows_per_file=8",
    ]
    address = ray.get_runtime_context().gcs_address
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # the real CLI entry point, with small Ray Data blocks so output lands block by block
    driver = (
        "import sys; from faults import small_blocks; small_blocks(); "
        "from raylabel.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", driver, "label", *common, f"run.ray_address={address}"],
        cwd=Path(__file__).resolve().parents[1] / "support",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    runs = out / "runs" / "crashy"
    try:
        wait_for_output(runs, timeout_s=300)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)

    opts = StorageOptions()
    (partial,) = [p for p in runs.iterdir() if p.name.startswith("r-")]
    time.sleep(1.0)  # Ray reaps the dead job's workers; nothing of the run may commit
    assert not (partial / "_SUCCESS").exists()
    assert not (runs / "LATEST").exists()
    assert layout.latest_run(str(out), "crashy", opts) is None  # readers see no result

    result = label(load_config([], common))
    assert result.run_id != partial.name and not result.skipped
    assert layout.latest_run(str(out), "crashy", opts) == result.run_id
    ids = committed_ids(runs / result.run_id)
    assert len(ids) == len(set(ids)) == len(expected) == 242  # every item exactly once
    assert set(ids) == expected
    assert not (partial / "_SUCCESS").exists()  # the killed run stays uncommitted
    # the kill landed mid-write: the abandoned run holds only part of the drop
    assert 0 < readable_rows(partial) < len(expected)
