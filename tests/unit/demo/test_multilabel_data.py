"""Tests for the multi-label demo generators: scenes of shapes and tagged tickets."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from raylabel.demo.multilabel_images import (
    MULTILABEL_SHAPES,
    MultilabelImagePaths,
    MultilabelImageSpec,
    render_scene,
    write_multilabel_image_demo,
)
from raylabel.demo.multilabel_texts import (
    MULTILABEL_TOPICS,
    MultilabelTextPaths,
    MultilabelTextSpec,
    write_multilabel_text_demo,
)
from raylabel.demo.text_render import render_tagged

IMG = MultilabelImageSpec(n_seed=120, n_drop=60, image_size=32, seed=3)
TXT = MultilabelTextSpec(n_seed=400, n_drop=60, seed=3)


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> MultilabelImagePaths:
    return write_multilabel_image_demo(tmp_path_factory.mktemp("mli"), IMG)


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> MultilabelTextPaths:
    return write_multilabel_text_demo(tmp_path_factory.mktemp("mlt"), TXT)


def _check_label_lists(rows: list[dict], classes: tuple[str, ...]) -> None:
    for r in rows:
        assert isinstance(r["label"], list)
        assert set(r["label"]) <= set(classes)
        assert len(set(r["label"])) == len(r["label"])
        assert r["label"] == [c for c in classes if c in r["label"]]  # spec order


def _check_prevalence(sets: list[list[str]], classes: tuple[str, ...]) -> None:
    n = len(sets)
    for c in classes:
        rate = sum(c in s for s in sets) / n
        assert 0.15 <= rate <= 0.55, (c, rate)
    sizes = [len(s) for s in sets]
    assert sizes.count(0) > 0 and sum(k >= 3 for k in sizes) > 0


def test_image_seed_manifest_and_files(images: MultilabelImagePaths) -> None:
    rows = _jsonl(images.seed_path)
    assert len(rows) == IMG.n_seed
    assert [r["item_id"] for r in rows] == [f"seed-{i:06d}" for i in range(IMG.n_seed)]
    _check_label_lists(rows, MULTILABEL_SHAPES)
    _check_prevalence([r["label"] for r in rows], MULTILABEL_SHAPES)
    for r in rows[:10]:
        with Image.open(images.seed_path.parent / r["uri"]) as im:
            assert im.size == (IMG.image_size, IMG.image_size) and im.mode == "RGB"


def test_image_drop_and_truth(images: MultilabelImagePaths) -> None:
    truth = pq.read_table(images.truth_path).to_pylist()
    names = sorted(p.name for p in images.drop_dir.iterdir())
    # item_id is the file's path relative to the drop folder, as the folder reader makes it
    assert [t["item_id"] for t in truth] == names
    assert len(names) == IMG.n_drop + IMG.n_bad_items
    assert not images.truth_path.is_relative_to(images.drop_dir)
    bad = [t for t in truth if t["labels"] is None]
    assert len(bad) == IMG.n_bad_items
    for t in bad:
        with pytest.raises(OSError), Image.open(images.drop_dir / t["item_id"]) as im:
            im.load()
    good = [t for t in truth if t["labels"] is not None]
    _check_prevalence([t["labels"] for t in good], MULTILABEL_SHAPES)
    assert all(t["labels"] for t in good if t["hard"])  # a hard item degrades a class shape
    assert 0 < sum(t["hard"] for t in good) <= round(IMG.hard_fraction * IMG.n_drop)


def test_image_demo_is_deterministic(images: MultilabelImagePaths, tmp_path: Path) -> None:
    again = write_multilabel_image_demo(tmp_path, IMG)
    assert _tree(again.root) == _tree(images.root)
    other = write_multilabel_image_demo(
        tmp_path / "o", MultilabelImageSpec(**{**IMG.__dict__, "seed": 4})
    )
    assert _tree(other.drop_dir) != _tree(images.drop_dir)


def test_scene_draws_more_with_more_shapes() -> None:
    """Shapes are really drawn: an empty scene differs from one holding every class."""

    def scene(present: list[str]) -> np.ndarray:
        rng = np.random.default_rng(5)
        return np.asarray(render_scene(present, rng, 48, False, 0.0), dtype=np.float32)

    empty, full = scene([]), scene(list(MULTILABEL_SHAPES))
    assert empty.shape == full.shape == (48, 48, 3)
    assert np.abs(full - empty).mean() > 10


def test_csv_seed_joins_labels_with_bar(tmp_path: Path) -> None:
    spec = MultilabelImageSpec(n_seed=30, n_drop=4, image_size=24, seed_format="csv")
    paths = write_multilabel_image_demo(tmp_path / "img", spec)
    jsonl = write_multilabel_image_demo(
        tmp_path / "j", MultilabelImageSpec(n_seed=30, n_drop=4, image_size=24)
    )
    assert paths.seed_path.name == "seed.csv"
    with paths.seed_path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    expected = _jsonl(jsonl.seed_path)
    assert [r["label"] for r in rows] == ["|".join(e["label"]) for e in expected]
    assert any(r["label"] == "" for r in rows) and any("|" in r["label"] for r in rows)
    tpaths = write_multilabel_text_demo(
        tmp_path / "txt", MultilabelTextSpec(n_seed=20, n_drop=3, seed_format="csv")
    )
    with tpaths.seed_path.open(newline="", encoding="utf-8") as fh:
        trows = list(csv.DictReader(fh))
    assert list(trows[0]) == ["item_id", "text", "label"]
    assert all(set(filter(None, r["label"].split("|"))) <= set(MULTILABEL_TOPICS) for r in trows)


def test_text_seed_drop_and_truth(texts: MultilabelTextPaths) -> None:
    rows = _jsonl(texts.seed_path)
    assert len(rows) == TXT.n_seed and all(r["text"].strip() for r in rows)
    _check_label_lists(rows, MULTILABEL_TOPICS)
    _check_prevalence([r["label"] for r in rows], MULTILABEL_TOPICS)
    truth = pq.read_table(texts.truth_path).to_pylist()
    assert [t["item_id"] for t in truth] == sorted(p.name for p in texts.drop_dir.iterdir())
    manifest = _jsonl(texts.drop_manifest)
    good = [t for t in truth if t["labels"] is not None]
    assert [m["item_id"] for m in manifest] == [t["item_id"] for t in good]
    for m in manifest:
        assert (texts.drop_dir / m["item_id"]).read_text(encoding="utf-8") == m["text"]
    for t in truth:
        if t["labels"] is None:
            data = (texts.drop_dir / t["item_id"]).read_bytes()
            assert not data.strip() or not _is_utf8(data)
    assert sum(t["labels"] is None for t in truth) == TXT.n_bad_items


def test_text_demo_is_deterministic(texts: MultilabelTextPaths, tmp_path: Path) -> None:
    assert _tree(write_multilabel_text_demo(tmp_path, TXT).root) == _tree(texts.root)


def test_tagged_ticket_speaks_each_topic() -> None:
    """A topic's keywords show up when it is tagged (a ticket with none is context only)."""
    import random

    keywords = {"billing": ("charge", "invoice", "refund", "pay", "bill", "fee", "price", "card")}
    hits = 0
    for i in range(40):
        text = render_tagged(["billing"], random.Random(i)).lower()
        hits += any(k in text for k in keywords["billing"])
        assert render_tagged(["billing", "shipping"], random.Random(i))
    assert hits >= 36
    with pytest.raises(ValueError, match="vague_topic"):
        render_tagged(["billing"], random.Random(0), vague_topic="shipping")
    with pytest.raises(ValueError, match="unknown topic"):
        render_tagged(["nope"], random.Random(0))


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (dict(prevalence=(0.5, 0.2)), "prevalence"),
        (dict(seed_format="xml"), "seed_format"),
        (dict(classes=("circle",)), "classes"),
        (dict(classes=("circle", "blob")), "classes"),
        (dict(n_drop=0), "n_drop"),
    ],
)
def test_bad_spec_names_its_field(spec: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        MultilabelImageSpec(**spec)
    if field != "classes":
        with pytest.raises(ValueError, match=field):
            MultilabelTextSpec(**spec)
