"""Nightly orchestration: retrain decisions, leases, one failing drop, idempotent reruns."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from modelutil import publish_random_model as publish_model

from raylabel.cli import main
from raylabel.config import Config, load_config
from raylabel.demo.images import ImageDemoSpec, write_image_demo
from raylabel.io import layout
from raylabel.io.storage import StorageOptions
from raylabel.nightly import Lease, nightly, retrain_decision

OPTS = StorageOptions()
CLASSES = ["circle", "square"]


def publish_random_model(root: Path, created_days_ago: float = 0.0) -> str:
    return publish_model(root, CLASSES, created_days_ago)


def cfg_for(root: Path, *extra: str) -> Config:
    return load_config(
        [],
        [
            f"drops.root={root / 'drops'}",
            f"output.root={root / 'out'}",
            "model.image_size=32",
            "review.size=8",
            "nightly.retrain_min_feedback=5",
            *extra,
        ],
    )


def test_retrain_decisions(tmp_path: Path) -> None:
    cfg = cfg_for(tmp_path)
    assert retrain_decision(cfg, OPTS)[:2] == (True, "no model yet")
    publish_random_model(tmp_path, created_days_ago=10)
    retrain, why, _ = retrain_decision(cfg, OPTS)
    assert retrain and "days old" in why
    version = publish_random_model(tmp_path)
    retrain, why, current = retrain_decision(cfg, OPTS)
    assert not retrain and current == version
    fb = tmp_path / "out" / "feedback" / "d1"
    fb.mkdir(parents=True)
    time.sleep(0.01)
    table = pa.table({"item_id": ["a"] * 3, "uri": ["u"] * 3, "label": ["circle"] * 3})
    pq.write_table(table, fb / "r-1.parquet")
    assert not retrain_decision(cfg, OPTS)[0]  # 3 < 5 new reviews
    pq.write_table(table, fb / "r-2.parquet")
    retrain, why, _ = retrain_decision(cfg, OPTS)
    assert retrain and "6 new reviewed items" in why


def test_lease_is_exclusive_and_expires(tmp_path: Path) -> None:
    root = str(tmp_path)
    a = Lease(root, "d1", ttl_s=60, opts=OPTS)
    b = Lease(root, "d1", ttl_s=60, opts=OPTS)
    assert a.acquire()
    assert not b.acquire()
    b.release()  # not the owner: must not free a's lease
    assert not Lease(root, "d1", ttl_s=60, opts=OPTS).acquire()
    a.release()
    assert b.acquire()
    b.release()
    crashed = Lease(root, "d1", ttl_s=0.05, opts=OPTS)  # a run that died holding the lease
    assert crashed.acquire()
    assert not Lease(root, "d1", ttl_s=60, opts=OPTS).acquire()
    time.sleep(0.1)
    assert Lease(root, "d1", ttl_s=60, opts=OPTS).acquire()  # an expired lease is taken over


@pytest.mark.slow
def test_nightly_failing_drop_lock_and_rerun(
    ray_cluster: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "drops").mkdir()
    for name, seed in (("2026-11-26", 1), ("2026-11-27", 2)):
        spec = ImageDemoSpec(2, 12, 32, classes=tuple(CLASSES), n_bad_items=1, seed=seed)
        data = write_image_demo(tmp_path / "gen" / name, spec)
        data.drop_dir.rename(tmp_path / "drops" / name)
    broken = tmp_path / "drops" / "2026-11-28"
    broken.mkdir()
    (broken / "notes.txt").write_text("no images in this drop")
    locked = tmp_path / "drops" / "2026-11-29"
    locked.mkdir()
    (locked / "x.png").write_bytes(b"")
    version = publish_random_model(tmp_path)
    holder = Lease(str(tmp_path / "out"), "2026-11-29", ttl_s=600, opts=OPTS)
    assert holder.acquire()  # another nightly run is busy with this drop

    cfg = cfg_for(tmp_path)
    result = nightly(cfg)
    status = {o.drop: o.status for o in result.outcomes}
    assert status == {
        "2026-11-26": "done",
        "2026-11-27": "done",
        "2026-11-28": "failed",
        "2026-11-29": "locked",
    }
    assert not result.retrained and result.model_version == version
    failed = next(o for o in result.outcomes if o.status == "failed")
    assert "drop.path" in failed.detail and "\n" not in failed.detail
    for name in ("2026-11-26", "2026-11-27"):
        assert layout.latest_run(str(tmp_path / "out"), name, OPTS)
    assert layout.latest_run(str(tmp_path / "out"), "2026-11-28", OPTS) is None
    summary = json.loads(Path(result.summary_uri).read_text())
    assert summary["counts"] == {"done": 2, "skipped": 0, "waiting": 0, "locked": 1, "failed": 1}

    holder.release()
    args = [
        "nightly",
        f"drops.root={tmp_path / 'drops'}",
        f"output.root={tmp_path / 'out'}",
        "model.image_size=32",
        "review.size=8",
    ]
    capsys.readouterr()
    assert main(args) == 1  # the broken drop still fails: non-zero exit
    out = capsys.readouterr().out
    assert "1 done, 2 skipped" in out  # the formerly locked drop is labeled now, others kept
    runs = tmp_path / "out" / "runs" / "2026-11-26"
    assert len([p for p in runs.iterdir() if p.name.startswith("r-")]) == 1  # no relabel
