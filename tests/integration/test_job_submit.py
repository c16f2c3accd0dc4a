"""End to end on a real cluster: `ray start --head` on loopback, `ray job submit` of
jobs/nightly.py over two drops in the loopback S3 endpoint, then again (a no-op)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from raycluster import start_head, stop_head, submit
from s3server import S3Server, make_bucket, upload_tree
from secretscan import leaks_in_text, leaks_in_tree

from raylabel.demo.images import ImageDemoSpec, write_image_demo
from raylabel.io import layout, listing, storage

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
CLASSES = ("circle", "square", "cross")


def test_nightly_via_ray_job_submit(s3_server: S3Server, tmp_path: Path) -> None:
    url = s3_server.endpoint_url
    make_bucket(url, "rl-nightly")
    a = write_image_demo(tmp_path / "a", ImageDemoSpec(16, 24, 32, classes=CLASSES, seed=1))
    b = write_image_demo(tmp_path / "b", ImageDemoSpec(4, 20, 32, classes=CLASSES, seed=2))
    upload_tree(a.seed_dir, url, "s3://rl-nightly/seed")
    upload_tree(a.drop_dir, url, "s3://rl-nightly/drops/2026-11-27")
    upload_tree(b.drop_dir, url, "s3://rl-nightly/drops/2026-11-28")

    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    ray_bin = str(Path(sys.executable).parent / "ray")
    head = start_head(ray_bin, env)
    args = [
        "python",
        "jobs/nightly.py",
        "-c",
        "conf/nightly.yaml",
        "drops.root=s3://rl-nightly/drops",
        "seed.path=s3://rl-nightly/seed",
        "output.root=s3://rl-nightly/out",
        f"storage.endpoint_url={url}",
        "model.image_size=32",
        "train.epochs=1",
        "train.min_steps=0",
        "qc.min_support=5",
        "review.size=10",
    ]
    try:
        first = submit(head, REPO, args)
        assert "2 done" in first, first[-3000:]
        opts = storage.StorageOptions(endpoint_url=url)
        runs = {
            d: layout.latest_run("s3://rl-nightly/out", d, opts)
            for d in ("2026-11-27", "2026-11-28")
        }
        assert all(runs.values()), runs
        second = submit(head, REPO, args)
        assert "0 done, 2 skipped" in second, second[-3000:]
        again = {d: layout.latest_run("s3://rl-nightly/out", d, opts) for d in runs}
        assert again == runs  # nothing relabeled
        run_dirs = listing.list_dirs("s3://rl-nightly/out/runs/2026-11-27", opts)
        assert run_dirs == [runs["2026-11-27"]]
        # issue #8 item 11: no credential in the job logs, Ray's job metadata or its logs
        jobs = subprocess.run(
            [ray_bin, "job", "list", "--address", head.dashboard_url],
            env=head.client_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert jobs.returncode == 0 and "jobs/nightly.py" in jobs.stdout, jobs.stderr[-2000:]
        leaks = leaks_in_text(first + second + jobs.stdout, "job output / metadata")
        leaks += leaks_in_tree(head.temp_dir / "session_latest" / "logs")
        assert not leaks, leaks
    finally:
        stop_head(head)
