"""Decoding inside the inference actors (the CPU fast path) gives exactly the rows, labels
and error rows of the separate decode stage, and the pool plan never over-reserves."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from modelutil import publish_random_model
from PIL import Image

from raylabel.cluster.session import ClusterShape
from raylabel.config import load_config
from raylabel.inputs import sources
from raylabel.label import label
from raylabel.label.pool import decode_in_actor, plan_pool

CLASSES = ["a", "b", "c"]


def _png(rng: np.random.Generator, size: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _parquet_drop(path: Path) -> dict[str, str | None]:
    """60 items: mostly fine (several sizes), plus zero-byte, truncated, null and not-an-image."""
    rng = np.random.default_rng(3)
    ids, payloads, expected = [], [], {}
    for i in range(56):
        ids.append(f"ok-{i:03d}")
        payloads.append(_png(rng, (24, 32, 40)[i % 3]))
        expected[ids[-1]] = None
    good = payloads[0]
    for name, data in [
        ("zero", b""),
        ("truncated", good[:60]),
        ("null", None),
        ("html", b"<html>nope</html>"),
    ]:
        ids.append(name)
        payloads.append(data)
        expected[name] = "decode"
    path.mkdir(parents=True)
    table = pa.table({"item_id": ids, "bytes": pa.array(payloads, pa.binary())})
    pq.write_table(table.slice(0, 30), path / "part-0.parquet")
    pq.write_table(table.slice(30), path / "part-1.parquet")
    return expected


def _read(run_dir: str, sub: str) -> pa.Table:
    files = sorted(Path(run_dir, sub).glob("*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]).sort_by("item_id")


@pytest.mark.slow
def test_decode_in_actor_matches_the_separate_decode_stage(
    ray_cluster: None, tmp_path: Path
) -> None:
    expected = _parquet_drop(tmp_path / "drop")
    version = publish_random_model(tmp_path, CLASSES)
    runs = {}
    for mode in ("always", "never"):
        cfg = load_config(
            [],
            [
                f"drop.path={tmp_path / 'drop'}",
                "drop.name=fused",
                f"output.root={tmp_path / 'out'}",
                f"run.model_version={version}",
                f"run.run_id=r-{mode}",
                "run.force=true",
                f"infer.decode_in_actor={mode}",
                "infer.batch_size=16",
                "infer.preprocess_batch_size=16",
                "review.size=10",
            ],
        )
        result = label(cfg)
        assert result.summary["pool"]["decode_in_actor"] is (mode == "always")
        runs[mode] = result.run_uri
    fused_labels, plain_labels = (_read(runs[m], "labels") for m in ("always", "never"))
    cols = ["item_id", "label", "label_index", "confidence", "accepted", "topk_labels"]
    assert fused_labels.select(cols).equals(plain_labels.select(cols))
    assert fused_labels.num_rows == 56
    fused_errors, plain_errors = (_read(runs[m], "errors") for m in ("always", "never"))
    assert fused_errors.select(["item_id", "stage"]).equals(
        plain_errors.select(["item_id", "stage"])
    )
    assert {r["item_id"]: r["stage"] for r in fused_errors.to_pylist()} == {
        k: v for k, v in expected.items() if v
    }


def _cfg(tmp_path: Path, *extra: str) -> object:
    return load_config([], [f"drop.path={tmp_path}", *extra])


@pytest.mark.parametrize("cpus", [2.0, 3.0, 8.0, 64.0])
def test_fused_pool_leaves_room_for_reads_and_writes(tmp_path: Path, cpus: float) -> None:
    pool = plan_pool(_cfg(tmp_path), ClusterShape(cpus=cpus, gpus=0, nodes=1), True)
    assert pool.decode_in_actor and pool.decode_cpus == 0.0
    assert pool.num_actors == int(cpus)  # one single-threaded actor per core
    assert pool.torch_threads == 1
    # Ray Data's listing task holds a whole CPU at the start, then the reads take over
    listing = 1.0
    reserved = pool.num_actors * pool.cpus_per_actor + pool.write_cpus
    assert reserved + max(listing, pool.read_cpus) <= cpus + 1e-9
    # reads in flight are capped (each new one can be a cold worker process), never to zero
    assert pool.read_tasks == max(1, int(cpus) // 2)


def test_separate_decode_pool_is_unchanged(tmp_path: Path) -> None:
    pool = plan_pool(_cfg(tmp_path), ClusterShape(cpus=2, gpus=0, nodes=1), False)
    assert not pool.decode_in_actor and pool.decode_cpus > 0
    assert pool.num_actors * pool.cpus_per_actor + pool.decode_cpus + pool.write_cpus <= 2


def test_auto_decodes_in_actor_only_for_cpu_inference_over_inline_parquet(tmp_path: Path) -> None:
    _parquet_drop(tmp_path / "drop")
    folder = tmp_path / "folder"
    folder.mkdir()
    Image.new("RGB", (8, 8)).save(folder / "x.png")
    for path, gpu, mode, device, want in [
        (tmp_path / "drop", False, "auto", "auto", True),
        # a GPU actor needs decode tasks to feed it, unless it decodes on its device
        (tmp_path / "drop", True, "auto", "never", False),
        (tmp_path / "drop", True, "auto", "auto", True),
        (folder, True, "auto", "auto", False),  # items fetched one by one: decode tasks fetch
        (folder, False, "auto", "auto", False),  # ... in parallel
        (folder, False, "always", "auto", True),
        (tmp_path / "drop", False, "never", "auto", False),
    ]:
        cfg = load_config(
            [],
            [
                f"drop.path={path}",
                f"infer.use_gpu={str(gpu).lower()}",
                f"infer.decode_in_actor={mode}",
                f"infer.decode_on_device={device}",
            ],
        )
        got = decode_in_actor(cfg, sources.plan_drop(cfg))
        assert got is want, (path.name, gpu, mode, device)


def test_decode_in_actor_rejects_unknown_mode(tmp_path: Path) -> None:
    from raylabel.errors import ConfigError

    with pytest.raises(ConfigError, match=r"infer\.decode_in_actor"):
        load_config([], ["infer.decode_in_actor=yes"])


def _jpeg_drop(path: Path) -> dict[str, str | None]:
    """24 items: JPEGs of several sizes and a PNG, plus a corrupt JPEG, a truncated one and a
    null payload."""
    rng = np.random.default_rng(5)
    ids, payloads, expected = [], [], {}
    for i in range(21):
        buf = io.BytesIO()
        img = Image.fromarray(rng.integers(0, 255, (24 + i, 40, 3), dtype=np.uint8))
        img.save(buf, "PNG" if i == 20 else "JPEG", quality=85)
        ids.append(f"ok-{i:03d}")
        payloads.append(buf.getvalue())
        expected[ids[-1]] = None
    corrupt = bytearray(payloads[0])
    for k in range(corrupt.index(b"\xff\xda") + 20, len(corrupt) - 10, 7):
        corrupt[k] = 0xFF
    for name, data in [
        ("corrupt", bytes(corrupt)),
        ("truncated", payloads[1][: len(payloads[1]) // 2]),
        ("null", None),
    ]:
        ids.append(name)
        payloads.append(data)
        expected[name] = "decode"
    path.mkdir(parents=True)
    pq.write_table(
        pa.table({"item_id": ids, "bytes": pa.array(payloads, pa.binary())}), path / "p.parquet"
    )
    return expected


@pytest.mark.slow
def test_decode_on_device_always_accounts_for_every_item(ray_cluster: None, tmp_path: Path) -> None:
    """infer.decode_on_device=always on CPU: the actors decode (torchvision's CPU decode_jpeg
    standing in for nvjpeg), and every item is a labeled row or an error row of the decode
    stage, as with the CPU decoder."""
    expected = _jpeg_drop(tmp_path / "drop")
    version = publish_random_model(tmp_path, CLASSES)
    cfg = load_config(
        [],
        [
            f"drop.path={tmp_path / 'drop'}",
            "drop.name=device",
            f"output.root={tmp_path / 'out'}",
            f"run.model_version={version}",
            "infer.decode_on_device=always",
            "infer.batch_size=8",
            "review.size=5",
        ],
    )
    result = label(cfg)
    assert result.summary["pool"]["decode_in_actor"] is True
    labels, errors = _read(result.run_uri, "labels"), _read(result.run_uri, "errors")
    assert labels.num_rows + errors.num_rows == len(expected)
    assert sorted(labels.column("item_id").to_pylist()) == sorted(
        k for k, v in expected.items() if v is None
    )
    assert {r["item_id"]: r["stage"] for r in errors.to_pylist()} == {
        k: v for k, v in expected.items() if v
    }
    assert labels.column("label").null_count == 0
