"""Issue #8 item 8: a drop of 2,000 items, 10% of them bad (corrupt, zero-byte, wrong type,
huge in pixels or in bytes): every bad one is named in errors/, every good one labeled,
each id exactly once, and the Ray workers' memory stays bounded while it streams."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest
from modelutil import publish_random_model
from PIL import Image

from raylabel.config import load_config
from raylabel.label import label

pytestmark = pytest.mark.slow

N_GOOD = 1800
RSS_BOUND = 3 * 2**30  # per Ray worker process; a small_cnn worker sits well under 1 GiB


def _png_bytes(rng: np.random.Generator, size: tuple[int, int] = (16, 16)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def make_drop(d: Path) -> dict[str, str]:
    """Write the drop; returns {file name: "ok" | expected error stage}."""
    d.mkdir(parents=True)
    rng = np.random.default_rng(8)
    variants = [_png_bytes(rng) for _ in range(16)]
    expected: dict[str, str] = {}
    for i in range(N_GOOD):
        name = f"good/{i:05d}.png"
        (d / "good").mkdir(exist_ok=True)
        (d / name).write_bytes(variants[i % len(variants)])
        expected[name] = "ok"
    big = io.BytesIO()
    Image.new("L", (3000, 3000), 128).save(big, format="PNG")  # 9 Mpx, a few KB on disk
    bad = {
        "corrupt": lambda i: variants[i % 16][: 40 + i],
        "zero": lambda i: b"",
        "wrongtype": lambda i: b"%PDF-1.7\n" + bytes(rng.integers(0, 255, 64, dtype=np.uint8)),
        "htmlpage": lambda i: b"<html><body>503 Slow Down</body></html>",
        "hugepixels": lambda i: big.getvalue(),
    }
    (d / "bad").mkdir()
    per_kind = 39
    for kind, make in bad.items():
        for i in range(per_kind):
            name = f"bad/{kind}-{i:03d}.png"
            (d / name).write_bytes(make(i))
            expected[name] = "decode"
    for i in range(5):  # huge in bytes: 4 MiB of noise each, still only an error row
        name = f"bad/hugebytes-{i}.png"
        (d / name).write_bytes(rng.bytes(4 * 2**20))
        expected[name] = "decode"
    return expected


def _worker_rss_sampler(stop: threading.Event, peak: dict[str, int]) -> None:
    """Largest RSS seen of any process under this session's raylet (its Ray workers)."""
    import ray

    node = ray._private.worker._global_node
    raylet = node.all_processes["raylet"][0].process.pid
    root = psutil.Process(raylet)
    while not stop.is_set():
        try:
            for proc in root.children(recursive=True):
                try:
                    peak["rss"] = max(peak["rss"], proc.memory_info().rss)
                except psutil.Error:
                    continue
        except psutil.Error:
            pass
        stop.wait(0.25)


def test_ten_percent_bad_items_at_scale(ray_cluster: None, tmp_path: Path) -> None:
    expected = make_drop(tmp_path / "drop")
    assert len(expected) == 2000
    assert sum(v != "ok" for v in expected.values()) == 200
    publish_random_model(tmp_path, ["a", "b"])
    cfg = load_config(
        [],
        [
            f"drop.path={tmp_path / 'drop'}",
            f"output.root={tmp_path / 'out'}",
            "infer.max_pixels=4000000",
            "infer.batch_size=128",
            "infer.preprocess_batch_size=128",
            "infer.object_store_mb=64",
            "output.rows_per_file=500",
            "review.size=10",
        ],
    )
    stop, peak = threading.Event(), {"rss": 0}
    sampler = threading.Thread(target=_worker_rss_sampler, args=(stop, peak), daemon=True)
    sampler.start()
    try:
        result = label(cfg)
    finally:
        stop.set()
        sampler.join(timeout=10)
    run = Path(result.run_uri)
    assert (run / "_SUCCESS").is_file()
    labels = pq.read_table(run / "labels").column("item_id").to_pylist()
    errors = pq.read_table(run / "errors").to_pylist()
    assert len(labels) == len(set(labels))
    assert len(errors) == len({e["item_id"] for e in errors})
    assert set(labels) == {k for k, v in expected.items() if v == "ok"}
    assert {e["item_id"]: e["stage"] for e in errors} == {
        k: v for k, v in expected.items() if v != "ok"
    }
    assert all(e["error"] and "\n" not in e["error"] for e in errors)
    assert result.summary["counts"]["errors"] == 200
    assert 0 < peak["rss"] < RSS_BOUND, peak
