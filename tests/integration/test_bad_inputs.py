"""Every kind of unusual or bad input through the real pipeline: unusual-but-valid images
are labeled, unusable items each become exactly one error row, the run still commits."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from modelutil import publish_random_model
from PIL import Image

from raylabel.config import load_config
from raylabel.label import label

pytestmark = pytest.mark.slow


def _save(img: Image.Image, path: Path, **kw: object) -> None:
    img.save(path, **kw)


def make_drop(d: Path) -> dict[str, str]:
    """Files plus the expected outcome: "ok" or the stage of the error row."""
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    _save(rgb.convert("CMYK"), d / "cmyk.jpg", format="JPEG")
    Image.fromarray((rng.integers(0, 65535, (30, 30))).astype(np.uint16)).save(d / "deep16.png")
    pal = rgb.convert("P")
    pal.info["transparency"] = 0
    _save(pal, d / "palette.png", transparency=0)
    _save(rgb.convert("RGBA"), d / "rgba.png")
    _save(rgb.convert("L"), d / "gray.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    _save(rgb, d / "rotated.jpg", format="JPEG", exif=exif.tobytes())
    _save(rgb.resize((1800, 1200)), d / "large.png")
    _save(rgb.resize((2600, 2600)), d / "too-many-pixels.png")
    (d / "zero.png").write_bytes(b"")
    buf = io.BytesIO()
    rgb.save(buf, format="PNG")
    (d / "truncated.png").write_bytes(buf.getvalue()[:200])
    (d / "not-an-image.png").write_bytes(b"<html>503 Service Unavailable</html>")
    expected = {
        "cmyk.jpg": "ok",
        "deep16.png": "ok",
        "palette.png": "ok",
        "rgba.png": "ok",
        "gray.png": "ok",
        "rotated.jpg": "ok",
        "large.png": "ok",
        "too-many-pixels.png": "decode",
        "zero.png": "decode",
        "truncated.png": "decode",
        "not-an-image.png": "decode",
        "missing.png": "read",
    }
    rows = [f"{name},{name}" for name in expected]
    rows.append("cmyk.jpg,cmyk.jpg")  # a repeated id: reported, not labeled twice
    (d / "manifest.csv").write_text("item_id,uri\n" + "\n".join(rows) + "\n")
    return expected


def test_every_kind_of_bad_input(ray_cluster: None, tmp_path: Path) -> None:
    expected = make_drop(tmp_path / "drop")
    publish_random_model(tmp_path, ["a", "b"])
    cfg = load_config(
        [],
        [
            f"drop.path={tmp_path / 'drop' / 'manifest.csv'}",
            f"output.root={tmp_path / 'out'}",
            "infer.max_pixels=4000000",
            "review.size=5",
        ],
    )
    result = label(cfg)
    run = Path(result.run_uri)
    assert (run / "_SUCCESS").is_file()
    labels = pq.read_table(run / "labels")
    errors = pq.read_table(run / "errors")
    assert labels.num_rows + errors.num_rows == len(expected) + 1
    labeled = set(labels.column("item_id").to_pylist())
    assert labeled == {k for k, v in expected.items() if v == "ok"}
    err = errors.to_pylist()
    stages = {(e["item_id"], e["stage"]) for e in err}
    for item, outcome in expected.items():
        if outcome != "ok":
            assert (item, outcome) in stages, (item, outcome, err)
    assert ("cmyk.jpg", "input") in stages  # the duplicate row
    by_id = {e["item_id"]: e["error"] for e in err if e["stage"] != "input"}
    assert "infer.max_pixels" in by_id["too-many-pixels.png"]
    assert "zero-byte" in by_id["zero.png"]
    assert "not found" in by_id["missing.png"]
    assert all("\n" not in e["error"] for e in err)
    summary = result.summary
    assert summary["counts"]["errors"] == errors.num_rows
    assert summary["counts"]["duplicates"] == 1
