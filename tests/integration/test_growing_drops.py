"""Issue #16 items 1 and 3: a drop that grows or changes gets a new complete run in which
unchanged items are carried, not re-inferred; a run whose driver died is finished by the
next attempt from the part files it already wrote. Real local Ray, real files."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from faults import committed_ids, readable_rows
from modelutil import publish_random_model
from PIL import Image

from raylabel.config import load_config
from raylabel.io import layout
from raylabel.io.storage import StorageOptions
from raylabel.label import label

pytestmark = pytest.mark.slow
CLASSES = ["x", "y"]


def _png(seed: int, size: int = 8) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _cfg(drop: Path, out: Path, *extra: str) -> list[str]:
    return [f"drop.path={drop}", f"output.root={out}", "review.size=4", "drop.name=d", *extra]


def _labels(run_uri: str) -> dict[str, dict]:
    return {r["item_id"]: r for r in pq.read_table(Path(run_uri) / "labels").to_pylist()}


def test_grown_drop_carries_unchanged_items_and_infers_the_rest(
    ray_cluster: None, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    for i in range(30):
        (drop / f"a{i:02d}.png").write_bytes(_png(i))
    (drop / "broken.png").write_bytes(b"not an image")
    publish_random_model(tmp_path, CLASSES)
    out = tmp_path / "out"
    first = label(load_config([], _cfg(drop, out)))
    assert first.summary["counts"]["inferred"] == 31 and first.summary["counts"]["reused"] == 0
    before = _labels(first.run_uri)

    for i in range(30, 40):  # ten new files
        (drop / f"a{i:02d}.png").write_bytes(_png(i))
    for i in (0, 1):  # two changed in place (new content and size)
        (drop / f"a{i:02d}.png").write_bytes(_png(100 + i, size=9))
    for i in (2, 3, 4):  # three gone
        (drop / f"a{i:02d}.png").unlink()
    second = label(load_config([], _cfg(drop, out)))
    c = second.summary["counts"]
    assert c["input"] == 38
    assert (c["reused"], c["inferred"], c["removed"]) == (26, 12, 3)  # 25 kept + broken
    assert c["reused"] + c["inferred"] == c["input"]
    assert second.summary["carried_from"] == [first.run_id]
    ids = committed_ids(Path(second.run_uri))
    expected = {p.name for p in drop.iterdir()}
    assert len(ids) == len(set(ids)) == len(expected) and set(ids) == expected
    after = _labels(second.run_uri)
    for i in range(5, 30):  # carried: same scores, stamped with tonight's run
        key = f"a{i:02d}.png"
        assert after[key]["run_id"] == second.run_id
        assert after[key]["topk_scores"] == pytest.approx(before[key]["topk_scores"])
        assert after[key]["label"] == before[key]["label"]
    errors = pq.read_table(Path(second.run_uri) / "errors").to_pylist()
    assert [e["item_id"] for e in errors] == ["broken.png"]

    third = label(load_config([], _cfg(drop, out)))
    assert third.skipped and third.run_id == second.run_id  # nothing changed: no new run
    assert layout.latest_run(str(out), "d", StorageOptions()) == second.run_id


def test_run_force_relabels_everything(ray_cluster: None, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    for i in range(6):
        (drop / f"a{i}.png").write_bytes(_png(i))
    publish_random_model(tmp_path, CLASSES)
    out = tmp_path / "out"
    label(load_config([], _cfg(drop, out)))
    (drop / "new.png").write_bytes(_png(50))
    forced = label(load_config([], _cfg(drop, out, "run.force=true")))
    assert (forced.summary["counts"]["reused"], forced.summary["counts"]["inferred"]) == (0, 7)


def _packed_drop(path: Path, n: int, per_file: int) -> set[str]:
    """A packed Parquet drop of `n` tiny PNGs (the shape a 10-million-item drop takes)."""
    path.mkdir(parents=True)
    payloads = [_png(i, size=16) for i in range(64)]
    ids: set[str] = set()
    for start in range(0, n, per_file):
        chunk = [f"item-{i:06d}" for i in range(start, min(n, start + per_file))]
        ids.update(chunk)
        table = pa.table({"item_id": chunk, "bytes": [payloads[i % 64] for i in range(len(chunk))]})
        pq.write_table(table, path / f"part-{start // per_file:03d}.parquet", row_group_size=500)
    return ids


def test_killed_driver_run_is_resumed_without_reinferring(
    ray_cluster: None, tmp_path: Path
) -> None:
    import ray

    n = 20_000
    expected = _packed_drop(tmp_path / "drop", n, per_file=2_500)
    publish_random_model(tmp_path, CLASSES, image_size=16)
    out = tmp_path / "out"
    common = _cfg(
        tmp_path / "drop",
        out,
        "model.image_size=16",
        "infer.num_actors=1",
        "infer.batch_size=250",
        "output.rows_per_file=1000",
    )
    address = ray.get_runtime_context().gcs_address
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    driver = "import sys; from raylabel.cli import main; sys.exit(main(sys.argv[1:]))"
    log = (tmp_path / "driver.log").open("wb")  # a pipe could fill up and stall the driver
    proc = subprocess.Popen(
        [sys.executable, "-c", driver, "label", *common, f"run.ray_address={address}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    runs = out / "runs" / "d"
    written = 0
    try:
        deadline = time.time() + 420
        while time.time() < deadline and proc.poll() is None:
            attempts = list(runs.glob("r-*")) if runs.exists() else []
            written = max([readable_rows(r) for r in attempts] or [0])
            if written >= n // 2:
                break
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        log.close()
    tail = (tmp_path / "driver.log").read_text(errors="replace")[-2000:]
    assert proc.returncode == -signal.SIGKILL, tail
    assert n // 4 <= written < n, f"killed with {written} of {n} rows written"
    time.sleep(1.0)  # Ray reaps the dead driver's workers
    assert layout.latest_run(str(out), "d", StorageOptions()) is None

    result = label(load_config([], common))
    c = result.summary["counts"]
    ids = committed_ids(Path(result.run_uri))
    assert len(ids) == len(set(ids)) == n and set(ids) == expected  # exactly once
    print(f"killed with {written}/{n} rows written; the rerun inferred {c['inferred']}")
    assert c["inferred"] <= 0.6 * n, c
    assert c["reused"] + c["inferred"] == n
    assert result.summary["carried_from"], "the killed attempt was not reused"
