"""Issue #8 item 7: the same drop labeled twice at once, and two nightly runs at once.

Both drivers are real `raylabel` processes joined to the session cluster (as two jobs
submitted to one cluster would be). Whatever the interleaving: no run holds an item twice,
`LATEST` names a committed, complete run, and nightly leases label each drop exactly once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from faults import committed_ids
from modelutil import publish_random_model

from raylabel.demo.images import ImageDemoSpec, write_image_demo
from raylabel.io import layout
from raylabel.io.storage import StorageOptions

pytestmark = pytest.mark.slow
CLASSES = ["circle", "square"]
OPTS = StorageOptions()


SUPPORT = Path(__file__).resolve().parents[1] / "support"


def _start_two(args: list[str], gate: Path) -> list[subprocess.CompletedProcess[str]]:
    """Two identical `raylabel` commands released together from a barrier (so they really
    run at once, not one after the other); wait for both."""
    import ray

    address = ray.get_runtime_context().gcs_address
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join([str(SUPPORT), env.get("PYTHONPATH", "")])
    driver = (
        f"import sys, barrier; barrier.wait({str(gate)!r}, 2); "
        "from raylabel.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    cmd = [sys.executable, "-c", driver, *args, f"run.ray_address={address}"]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    done = []
    for p in procs:
        out, err = p.communicate(timeout=400)
        done.append(subprocess.CompletedProcess(cmd, p.returncode, out, err))
    return done


def _id_time(run_id: str) -> float:
    """When a run was planned: run ids carry their creation time (layout.new_id)."""
    from datetime import datetime, timezone

    stamp = run_id.split("-")[1]
    return datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=timezone.utc).timestamp()


def _runs(root: Path, drop: str) -> list[Path]:
    base = root / "runs" / drop
    return sorted(p for p in base.iterdir() if p.name.startswith("r-")) if base.is_dir() else []


def _drop(root: Path, name: str, seed: int) -> tuple[Path, int]:
    spec = ImageDemoSpec(2, 30, 32, classes=tuple(CLASSES), n_bad_items=1, seed=seed)
    data = write_image_demo(root / "gen" / name, spec)
    dest = root / "drops" / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    data.drop_dir.rename(dest)
    return dest, sum(1 for p in dest.rglob("*") if p.is_file())


def test_same_drop_labeled_twice_at_once(ray_cluster: None, tmp_path: Path) -> None:
    drop, n_items = _drop(tmp_path, "d1", seed=1)
    publish_random_model(tmp_path, CLASSES)
    out = tmp_path / "out"
    results = _start_two(
        [
            "label",
            f"drop.path={drop}",
            f"output.root={out}",
            "model.image_size=32",
            "review.size=8",
        ],
        tmp_path / "gate",
    )
    for r in results:
        assert r.returncode == 0, r.stderr[-3000:]
    # released together, both planned before either committed: two runs, in flight at once
    runs = _runs(out, "d1")
    assert len(runs) == 2, [r.stdout[-500:] for r in results]
    started = {run.name: _id_time(run.name) for run in runs}
    committed = {run.name: (run / "_SUCCESS").stat().st_mtime for run in runs}
    a, b = runs[0].name, runs[1].name
    assert started[a] < committed[b] and started[b] < committed[a], "the runs did not overlap"
    for run in runs:
        ids = committed_ids(run)
        assert len(ids) == len(set(ids)) == n_items  # complete, no duplicates
    latest = layout.latest_run(str(out), "d1", OPTS)
    assert latest in {r.name for r in runs}


def test_two_nightly_runs_at_once_label_each_drop_once(ray_cluster: None, tmp_path: Path) -> None:
    sizes = dict(_drop(tmp_path, f"2026-11-2{i}", seed=i) for i in (1, 2))
    sizes = {p.name: n for p, n in sizes.items()}
    publish_random_model(tmp_path, CLASSES)
    out = tmp_path / "out"
    results = _start_two(
        [
            "nightly",
            f"drops.root={tmp_path / 'drops'}",
            f"output.root={out}",
            "model.image_size=32",
            "review.size=8",
            "nightly.retrain_min_feedback=1000",
        ],
        tmp_path / "gate",
    )
    for r in results:
        assert r.returncode == 0, r.stderr[-3000:]  # "locked" / "skipped" are clean exits
    summaries = [json.loads(p.read_text()) for p in sorted((out / "nightly").glob("*.json"))]
    assert len(summaries) == 2
    all_statuses = []
    for drop, n_items in sizes.items():
        statuses = sorted(o["status"] for s in summaries for o in s["drops"] if o["drop"] == drop)
        assert statuses in (["done", "locked"], ["done", "skipped"]), (drop, statuses)
        all_statuses += statuses
        (run,) = _runs(out, drop)  # labeled exactly once, by whichever run held the lease
        assert layout.latest_run(str(out), drop, OPTS) == run.name
        ids = committed_ids(run)
        assert len(ids) == len(set(ids)) == n_items
    assert "locked" in all_statuses  # the two nights really ran at once and met a lease
    for folder in (out / "locks").iterdir():  # both runs released their leases
        last = max(folder.glob("*.json"))
        assert json.loads(last.read_text())["released"], folder
