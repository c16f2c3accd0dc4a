"""Helpers for fault-injection tests: find a Ray actor's process, check ids exactly once."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pyarrow.parquet as pq


def actor_pids(class_name: str) -> list[int]:
    """Pids of the live actors whose class name contains `class_name` (Ray Data names pool
    actors `MapWorker(MapBatches(<udf>))`), from the GCS actor table, which works without
    the dashboard that the session cluster does not start."""
    import ray

    table = ray._private.state.actors()
    return sorted(
        int(a["Pid"])
        for a in table.values()
        if class_name in str(a.get("ActorClassName")) and a.get("State") == "ALIVE" and a.get("Pid")
    )


def kill_one_actor(class_name: str, timeout_s: float = 60.0) -> int:
    """SIGKILL one live actor of the class (waiting for one to exist); returns its pid."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        pids = actor_pids(class_name)
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            return pids[0]
        time.sleep(0.05)
    import ray

    seen = sorted({str(a.get("ActorClassName")) for a in ray._private.state.actors().values()})
    raise AssertionError(f"no live {class_name} actor within {timeout_s}s; actors: {seen}")


def committed_ids(run_dir: Path) -> list[str]:
    """Every item id in a run's labels/ and errors/ tables, duplicates kept."""
    ids: list[str] = []
    for sub in ("labels", "errors"):
        if (run_dir / sub).is_dir():
            ids += pq.read_table(run_dir / sub).column("item_id").to_pylist()
    return ids


def drop_ids(drop_dir: Path) -> set[str]:
    """The item ids of a folder drop (paths relative to the drop, as the lister names them)."""
    return {p.relative_to(drop_dir).as_posix() for p in drop_dir.rglob("*") if p.is_file()}


def small_blocks(nbytes: int = 32 * 1024) -> None:
    """Cut Ray Data blocks at `nbytes` in this driver (inherited by its tasks), so a small
    drop streams through the pipeline as many blocks and labels files appear one by one
    while later blocks are still being inferred: a fault can land mid-run on purpose."""
    from ray.data import DataContext

    DataContext.get_current().target_max_block_size = nbytes


def wait_for_output(runs: Path, timeout_s: float = 240) -> int:
    """Block until a run under `runs` has written its first labels file; returns the count."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        files = list(runs.glob("r-*/labels/*.parquet"))
        if files:
            return len(files)
        time.sleep(0.02)
    raise AssertionError(f"no labels file under {runs} within {timeout_s}s")


def readable_rows(run: Path) -> int:
    """Rows in a run's complete Parquet part files (a file cut short by a kill does not
    count): how much a killed attempt had provably written."""
    rows = 0
    for f in run.glob("*/part-*.parquet"):
        try:
            rows += pq.read_metadata(f).num_rows
        except (OSError, ValueError):
            continue
    return rows
