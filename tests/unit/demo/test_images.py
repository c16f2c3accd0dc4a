"""Tests for the synthetic image demo data generator."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from raylabel.demo.images import (
    DEFAULT_CLASSES,
    ImageDemoPaths,
    ImageDemoSpec,
    render_shape,
    write_image_demo,
)

SMALL = ImageDemoSpec(n_seed_per_class=10, n_drop=40, image_size=48, seed=7)


def _read_truth(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _decodes(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            im.load()
    except Exception:
        return False
    return True


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> ImageDemoPaths:
    return write_image_demo(tmp_path_factory.mktemp("demo"), SMALL)


def test_layout(demo: ImageDemoPaths) -> None:
    assert demo.seed_dir == demo.root / "seed"
    assert demo.drop_dir == demo.root / "drop"
    assert sorted(p.name for p in demo.seed_dir.iterdir()) == sorted(DEFAULT_CLASSES)
    for cls in DEFAULT_CLASSES:
        files = list((demo.seed_dir / cls).iterdir())
        assert len(files) == SMALL.n_seed_per_class
        assert all(f.suffix == ".png" for f in files)
    drop_files = sorted(p.name for p in demo.drop_dir.iterdir())
    assert len(drop_files) == SMALL.n_drop + SMALL.n_bad_items
    rows = _read_truth(demo.truth_path)
    assert list(rows[0]) == ["item_id", "label", "hard"]
    assert sorted(r["item_id"] for r in rows) == drop_files
    assert sum(r["label"] == "" for r in rows) == SMALL.n_bad_items
    assert {r["label"] for r in rows} - {""} <= set(DEFAULT_CLASSES)
    assert {r["hard"] for r in rows} <= {"0", "1"}


def test_seed_images_are_rgb_at_spec_size(demo: ImageDemoPaths) -> None:
    for path in list((demo.seed_dir / "star").iterdir())[:3]:
        with Image.open(path) as im:
            assert im.mode == "RGB"
            assert im.size == (SMALL.image_size, SMALL.image_size)


def test_truth_outside_drop_and_names_do_not_leak(demo: ImageDemoPaths) -> None:
    assert demo.truth_path.exists()
    assert demo.drop_dir not in demo.truth_path.parents
    for path in demo.drop_dir.iterdir():
        assert path.name.startswith("item-")
        assert not any(cls in path.name.lower() for cls in DEFAULT_CLASSES)


def test_bad_items_fail_to_decode_and_good_items_decode(demo: ImageDemoPaths) -> None:
    rows = _read_truth(demo.truth_path)
    bad = [demo.drop_dir / r["item_id"] for r in rows if r["label"] == ""]
    good = [demo.drop_dir / r["item_id"] for r in rows if r["label"] != ""]
    assert any(p.stat().st_size == 0 for p in bad)
    assert any(p.stat().st_size > 0 and p.suffix == ".png" for p in bad)  # truncated PNG
    assert not any(_decodes(p) for p in bad)
    assert all(_decodes(p) for p in good)


def test_more_bad_kinds_when_asked(tmp_path: Path) -> None:
    spec = ImageDemoSpec(
        n_seed_per_class=1, n_drop=5, image_size=32, n_bad_items=4, classes=("circle", "cross")
    )
    paths = write_image_demo(tmp_path, spec)
    rows = _read_truth(paths.truth_path)
    bad = [paths.drop_dir / r["item_id"] for r in rows if r["label"] == ""]
    assert len(bad) == 4
    assert {p.suffix for p in bad} == {".png", ".jpg"}
    assert not any(_decodes(p) for p in bad)


def test_deterministic_bytes(tmp_path: Path, demo: ImageDemoPaths) -> None:
    again = write_image_demo(tmp_path / "again", SMALL)
    assert _tree_bytes(again.root) == _tree_bytes(demo.root)


def test_different_seed_differs(tmp_path: Path, demo: ImageDemoPaths) -> None:
    spec = ImageDemoSpec(n_seed_per_class=10, n_drop=40, image_size=48, seed=8)
    other = write_image_demo(tmp_path, spec)
    assert _tree_bytes(other.root) != _tree_bytes(demo.root)


def test_rerun_overwrites_cleanly(tmp_path: Path) -> None:
    big = ImageDemoSpec(n_seed_per_class=3, n_drop=12, image_size=32)
    small = ImageDemoSpec(n_seed_per_class=2, n_drop=5, image_size=32, classes=("star", "cross"))
    write_image_demo(tmp_path, big)
    (tmp_path / "keep.txt").write_text("not ours")
    paths = write_image_demo(str(tmp_path), small)
    assert sorted(p.name for p in paths.seed_dir.iterdir()) == ["cross", "star"]
    assert len(list(paths.drop_dir.iterdir())) == 5 + small.n_bad_items
    assert (tmp_path / "keep.txt").read_text() == "not ours"


def test_mixed_formats_present_and_absent(tmp_path: Path) -> None:
    spec = ImageDemoSpec(n_seed_per_class=1, n_drop=60, image_size=32, hard_fraction=0.0)
    paths = write_image_demo(tmp_path / "mixed", spec)
    rows = [r for r in _read_truth(paths.truth_path) if r["label"]]
    modes, sizes = set(), set()
    for r in rows:
        with Image.open(paths.drop_dir / r["item_id"]) as im:
            modes.add((im.format, im.mode))
            sizes.add(im.size)
    assert ("JPEG", "RGB") in modes
    assert len(modes) >= 3
    assert len(sizes) >= 2

    plain = ImageDemoSpec(
        n_seed_per_class=1, n_drop=30, image_size=32, mixed_formats=False, n_bad_items=0
    )
    paths = write_image_demo(tmp_path / "plain", plain)
    for p in paths.drop_dir.iterdir():
        assert p.suffix == ".png"
        with Image.open(p) as im:
            assert (im.mode, im.size) == ("RGB", (32, 32))


def test_hard_fraction_respected(tmp_path: Path) -> None:
    spec = ImageDemoSpec(n_seed_per_class=2, n_drop=80, image_size=24, hard_fraction=0.25)
    paths = write_image_demo(tmp_path, spec)
    rows = [r for r in _read_truth(paths.truth_path) if r["label"]]
    share = sum(r["hard"] == "1" for r in rows) / len(rows)
    assert abs(share - 0.25) <= 0.05
    none = ImageDemoSpec(n_seed_per_class=1, n_drop=10, image_size=24, hard_fraction=0.0)
    rows = _read_truth(write_image_demo(tmp_path / "none", none).truth_path)
    assert all(r["hard"] == "0" for r in rows)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_seed_per_class": 0}, "n_seed_per_class"),
        ({"n_drop": -1}, "n_drop"),
        ({"n_bad_items": -1}, "n_bad_items"),
        ({"image_size": 8}, "image_size"),
        ({"hard_fraction": 1.0}, "hard_fraction"),
        ({"hard_fraction": -0.1}, "hard_fraction"),
        ({"classes": ("circle",)}, "classes"),
        ({"classes": ("circle", "circle")}, "classes"),
        ({"classes": ("circle", "blob")}, "classes"),
    ],
)
def test_spec_validation(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ImageDemoSpec(**kwargs)  # type: ignore[arg-type]


def test_render_shape_contract() -> None:
    for shape in DEFAULT_CLASSES:
        for hard in (False, True):
            img = render_shape(shape, np.random.default_rng(1), 40, hard)
            assert img.mode == "RGB"
            assert img.size == (40, 40)
    a = render_shape("star", np.random.default_rng(3), 32, True)
    b = render_shape("star", np.random.default_rng(3), 32, True)
    assert a.tobytes() == b.tobytes()
    with pytest.raises(ValueError, match="shape"):
        render_shape("blob", np.random.default_rng(0), 32, False)
