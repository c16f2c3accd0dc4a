"""Issue #15, inputs: every item a drop holds ends in labels/ or errors/, exactly once,
through the real pipeline (local Ray, real files): camera names, hidden files, repeated
and null packed ids, oversized items. Each test failed on the code before the fix."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from modelutil import publish_random_model
from PIL import Image

from raylabel.cli import main
from raylabel.config import load_config
from raylabel.label import label

pytestmark = pytest.mark.slow
GIB = 1 << 30


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _cfg(drop: Path | str, out: Path, *extra: str) -> list[str]:
    return [f"drop.path={drop}", f"output.root={out}", "review.size=4", *extra]


def _rows(run: str) -> tuple[list[dict], list[dict]]:
    labels = pq.read_table(Path(run) / "labels").to_pylist()
    errors = (
        pq.read_table(Path(run) / "errors").to_pylist() if (Path(run) / "errors").exists() else []
    )
    return labels, errors


def test_hole1_camera_names_and_hidden_files_are_items_and_skips_are_counted(
    ray_cluster: None, tmp_path: Path
) -> None:
    drop = tmp_path / "camera"
    items = ["_DSC0001.JPG", "_DSC0002.png", ".hidden.png", "IMG_0001.png", "sub/_x.png"]
    for i, name in enumerate(items):
        (drop / name).parent.mkdir(parents=True, exist_ok=True)
        (drop / name).write_bytes(_png(i))
    for junk in ("_SUCCESS", ".DS_Store", "__MACOSX/._IMG_0001.png", "notes.txt"):
        (drop / junk).parent.mkdir(parents=True, exist_ok=True)
        (drop / junk).write_bytes(b"x")
    publish_random_model(tmp_path, ["a", "b"])
    result = label(load_config([], _cfg(drop, tmp_path / "out")))
    labels, errors = _rows(result.run_uri)
    assert sorted(r["item_id"] for r in labels) == sorted(items)
    assert errors == []
    assert result.summary["counts"]["input"] == len(items)
    assert result.summary["counts"]["skipped"] == {"marker": 1, "os_metadata": 2, "extension": 1}
    text = "\n".join(result.summary_lines())
    assert "not items (skipped files): 1 extension, 1 marker, 2 os_metadata" in text
    report = (Path(result.run_uri) / "report.html").read_text()
    assert "Files that are not items" in report


def _packed(path: Path, ids: list[str | None], payloads: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"item_id": pa.array(ids, pa.string()), "bytes": payloads}), path)


def test_hole2_repeated_packed_ids_label_the_first_occurrence_only(
    ray_cluster: None, tmp_path: Path
) -> None:
    bad = b"not an image"
    # file 1: a b a ; file 2: c b. The first "a" decodes, the second would not: if the
    # repeat were the labeled one, "a" would be an error row.
    _packed(tmp_path / "drop" / "part-1.parquet", ["a", "b", "a"], [_png(1), _png(2), bad])
    _packed(tmp_path / "drop" / "part-2.parquet", ["c", "b"], [_png(3), _png(4)])
    publish_random_model(tmp_path, ["x", "y"])
    result = label(load_config([], _cfg(tmp_path / "drop", tmp_path / "out")))
    labels, errors = _rows(result.run_uri)
    assert sorted(r["item_id"] for r in labels) == ["a", "b", "c"]
    assert sorted((e["item_id"], e["stage"]) for e in errors) == [("a", "input"), ("b", "input")]
    assert all("duplicate item_id" in e["error"] for e in errors)
    assert result.summary["counts"]["duplicates"] == 2
    assert result.summary["counts"]["input"] == 5


@pytest.mark.parametrize(("bad_id", "word"), [(None, "a null"), ("", "an empty")])
def test_hole2_null_or_empty_packed_id_stops_with_exit_2(
    ray_cluster: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    bad_id: str | None,
    word: str,
) -> None:
    path = tmp_path / "drop" / "part-1.parquet"
    _packed(path, ["a", bad_id, "c"], [_png(1), _png(2), _png(3)])
    publish_random_model(tmp_path, ["x", "y"])
    assert main(["label", *_cfg(tmp_path / "drop", tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert str(path) in err[0] and "column 'item_id'" in err[0]
    assert f"row 1 has {word} id" in err[0]
    assert not (tmp_path / "out" / "runs").exists()  # stopped before any work


class _PeakRss:
    """The largest resident set of any Ray worker of this test's cluster while it runs.

    Only descendants of this process count: under xdist another test process runs its
    own cluster, whose training workers would otherwise be measured here."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for p in psutil.Process().children(recursive=True):
                try:
                    cmd = " ".join(p.cmdline())
                    if "ray::" in cmd or "ray::" in p.name():
                        self.peak = max(self.peak, p.memory_info().rss)
                except psutil.Error:
                    continue
            time.sleep(0.05)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def test_hole4_a_1gib_item_becomes_an_error_row_and_memory_stays_bounded(
    ray_cluster: None, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "ok.png").write_bytes(_png(0))
    with open(drop / "huge.png", "wb") as f:  # sparse: 1 GiB on paper, nothing on disk
        f.truncate(GIB)
    manifest_drop = tmp_path / "manifest-drop"
    manifest_drop.mkdir()
    os.link(drop / "huge.png", manifest_drop / "huge.png")
    (manifest_drop / "ok.png").write_bytes(_png(1))
    (manifest_drop / "m.csv").write_text("item_id,uri\nbig,huge.png\nsmall,ok.png\n")
    small_drop = tmp_path / "small-drop"
    small_drop.mkdir()
    (small_drop / "ok.png").write_bytes(_png(2))
    publish_random_model(tmp_path, ["x", "y"])
    # every worker imports torch: the same job without the huge item is the baseline
    with _PeakRss() as baseline:
        label(load_config([], _cfg(small_drop, tmp_path / "out")))
    with _PeakRss() as watch:
        folder = label(load_config([], _cfg(drop, tmp_path / "out")))
        # a manifest gives no sizes: the read itself stops at the limit
        manifest = label(load_config([], _cfg(manifest_drop / "m.csv", tmp_path / "out")))
    for result, big, small in ((folder, "huge.png", "ok.png"), (manifest, "big", "small")):
        labels, errors = _rows(result.run_uri)
        assert [r["item_id"] for r in labels] == [small]
        assert [(e["item_id"], e["stage"]) for e in errors] == [(big, "read")]
        assert "infer.max_item_bytes=67108864" in errors[0]["error"]
        assert (Path(result.run_uri) / "_SUCCESS").is_file()
    grew = watch.peak - baseline.peak
    assert baseline.peak > 0 and grew < GIB // 4, f"a worker held {grew / 2**20:.0f} MiB more"


def test_hole4_packed_payload_over_the_limit_is_an_error_row(
    ray_cluster: None, tmp_path: Path
) -> None:
    big = _png(1) + b"\0" * 5000  # decodable prefix, but longer than the limit
    _packed(tmp_path / "drop" / "p.parquet", ["small", "big"], [_png(2), big])
    publish_random_model(tmp_path, ["x", "y"])
    result = label(
        load_config([], _cfg(tmp_path / "drop", tmp_path / "out", "infer.max_item_bytes=4000"))
    )
    labels, errors = _rows(result.run_uri)
    assert [r["item_id"] for r in labels] == ["small"]
    assert [(e["item_id"], e["stage"]) for e in errors] == [("big", "read")]
