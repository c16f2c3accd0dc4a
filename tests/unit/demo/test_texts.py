"""Tests for the synthetic text demo data generator."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from raylabel.demo.texts import (
    DEFAULT_TOPICS,
    TextDemoPaths,
    TextDemoSpec,
    render_text,
    write_text_demo,
)

SMALL = TextDemoSpec(n_seed_per_class=12, n_drop=150, seed=7, n_bad_items=4)


def _read_truth(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _read_jsonl(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _bad_reason(data: bytes) -> str | None:
    """Why a drop file is unusable as text, or None for a good one."""
    if not data:
        return "empty"
    if b"\x00" in data:
        return "binary"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "not_utf8"
    return None if text.strip() else "blank"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> TextDemoPaths:
    return write_text_demo(tmp_path_factory.mktemp("demo"), SMALL)


def test_layout_and_counts(demo: TextDemoPaths) -> None:
    assert demo.seed_path == demo.root / "seed" / "seed.jsonl"
    assert demo.drop_dir == demo.root / "drop"
    assert demo.drop_manifest == demo.root / "drop.jsonl"
    assert demo.truth_path == demo.root / "truth" / "drop_truth.csv"
    drop_files = sorted(p.name for p in demo.drop_dir.iterdir())
    assert len(drop_files) == SMALL.n_drop + SMALL.n_bad_items
    assert all(re.fullmatch(r"item-\d{6}\.txt", name) for name in drop_files)
    rows = _read_truth(demo.truth_path)
    assert list(rows[0]) == ["item_id", "label", "hard"]
    assert sorted(r["item_id"] for r in rows) == drop_files
    assert sum(r["label"] == "" for r in rows) == SMALL.n_bad_items
    assert {r["label"] for r in rows} - {""} == set(DEFAULT_TOPICS)
    assert {r["hard"] for r in rows} <= {"0", "1"}
    assert all(r["hard"] == "0" for r in rows if r["label"] == "")


def test_seed_has_each_class_n_times(demo: TextDemoPaths) -> None:
    rows = _read_jsonl(demo.seed_path)
    assert all(list(r) == ["item_id", "text", "label"] for r in rows)
    assert Counter(r["label"] for r in rows) == {c: SMALL.n_seed_per_class for c in DEFAULT_TOPICS}
    assert len({r["item_id"] for r in rows}) == len(rows)
    assert all(r["text"].strip() for r in rows)
    # Shuffled, not grouped by class.
    assert len({r["label"] for r in rows[: SMALL.n_seed_per_class]}) > 1


def test_manifest_equals_good_drop_files(demo: TextDemoPaths) -> None:
    manifest = _read_jsonl(demo.drop_manifest)
    assert all(list(r) == ["item_id", "text"] for r in manifest)
    good = [r["item_id"] for r in _read_truth(demo.truth_path) if r["label"]]
    assert [r["item_id"] for r in manifest] == good
    for r in manifest:
        assert (demo.drop_dir / r["item_id"]).read_bytes().decode("utf-8") == r["text"]


def test_bad_items_are_bad_and_good_items_are_text(demo: TextDemoPaths) -> None:
    rows = _read_truth(demo.truth_path)
    bad = [(demo.drop_dir / r["item_id"]).read_bytes() for r in rows if r["label"] == ""]
    good = [(demo.drop_dir / r["item_id"]).read_bytes() for r in rows if r["label"] != ""]
    # Four bad items: one of each kind, in the documented order.
    assert [_bad_reason(b) for b in bad] == ["empty", "binary", "not_utf8", "blank"]
    latin1 = next(b for b in bad if _bad_reason(b) == "not_utf8")
    assert "arrivée" in latin1.decode("latin-1")
    assert all(_bad_reason(b) is None for b in good)
    assert not any(b.startswith(b"\xef\xbb\xbf") for b in good)  # no BOM


def test_more_bad_items_cycle(tmp_path: Path) -> None:
    spec = TextDemoSpec(n_seed_per_class=1, n_drop=5, n_bad_items=6, long_fraction=0.0)
    paths = write_text_demo(tmp_path, spec)
    rows = _read_truth(paths.truth_path)
    reasons = [_bad_reason((paths.drop_dir / r["item_id"]).read_bytes()) for r in rows]
    assert Counter(reasons) == {None: 5, "empty": 2, "binary": 2, "not_utf8": 1, "blank": 1}
    assert len(_read_jsonl(paths.drop_manifest)) == 5


def test_truth_outside_drop_and_names_do_not_leak(demo: TextDemoPaths) -> None:
    assert demo.truth_path.exists()
    assert demo.drop_dir not in demo.truth_path.parents
    assert demo.drop_dir not in demo.drop_manifest.parents
    for path in demo.drop_dir.iterdir():
        assert not any(topic in path.name.lower() for topic in DEFAULT_TOPICS)


def test_long_items(demo: TextDemoPaths, tmp_path: Path) -> None:
    rows = {r["item_id"]: r for r in _read_truth(demo.truth_path)}
    manifest = _read_jsonl(demo.drop_manifest)
    long_items = [r for r in manifest if len(r["text"].split()) > 3000]
    assert len(long_items) == round(SMALL.long_fraction * SMALL.n_drop)
    assert all(rows[r["item_id"]]["hard"] == "0" for r in long_items)
    # Ordinary items stay short.
    lengths = sorted(len(r["text"].split()) for r in manifest)
    assert lengths[len(lengths) // 2] < 120
    # At least one long item even for a small drop.
    tiny = TextDemoSpec(n_seed_per_class=1, n_drop=10, n_bad_items=0, hard_fraction=0.0)
    paths = write_text_demo(tmp_path, tiny)
    texts = [r["text"] for r in _read_jsonl(paths.drop_manifest)]
    assert sum(len(t.split()) > 3000 for t in texts) == 1


def test_deterministic_bytes(tmp_path: Path, demo: TextDemoPaths) -> None:
    again = write_text_demo(tmp_path / "again", SMALL)
    assert _tree_bytes(again.root) == _tree_bytes(demo.root)


def test_different_seed_differs(tmp_path: Path, demo: TextDemoPaths) -> None:
    spec = TextDemoSpec(n_seed_per_class=12, n_drop=150, seed=8, n_bad_items=4)
    other = write_text_demo(tmp_path, spec)
    assert _tree_bytes(other.root) != _tree_bytes(demo.root)


def test_rerun_overwrites_cleanly(tmp_path: Path) -> None:
    big = TextDemoSpec(n_seed_per_class=3, n_drop=20, long_fraction=0.0)
    small = TextDemoSpec(
        n_seed_per_class=2, n_drop=5, classes=("praise", "billing"), long_fraction=0.0
    )
    write_text_demo(tmp_path, big)
    (tmp_path / "keep.txt").write_text("not ours")
    paths = write_text_demo(str(tmp_path), small)
    assert len(list(paths.drop_dir.iterdir())) == 5 + small.n_bad_items
    assert {r["label"] for r in _read_jsonl(paths.seed_path)} == {"praise", "billing"}
    assert len(_read_jsonl(paths.drop_manifest)) == 5
    assert len(_read_truth(paths.truth_path)) == 5 + small.n_bad_items
    assert (tmp_path / "keep.txt").read_text() == "not ours"


def test_hard_fraction_respected(tmp_path: Path) -> None:
    spec = TextDemoSpec(n_seed_per_class=20, n_drop=200, hard_fraction=0.25, long_fraction=0.0)
    paths = write_text_demo(tmp_path, spec)
    rows = [r for r in _read_truth(paths.truth_path) if r["label"]]
    assert sum(r["hard"] == "1" for r in rows) == 50
    none = TextDemoSpec(n_seed_per_class=1, n_drop=10, hard_fraction=0.0, long_fraction=0.0)
    rows = _read_truth(write_text_demo(tmp_path / "none", none).truth_path)
    assert all(r["hard"] == "0" for r in rows)


def test_drop_classes_unbalanced(tmp_path: Path) -> None:
    spec = TextDemoSpec(n_seed_per_class=1, n_drop=600, long_fraction=0.0, n_bad_items=0)
    counts = Counter(r["label"] for r in _read_truth(write_text_demo(tmp_path, spec).truth_path))
    assert set(counts) == set(DEFAULT_TOPICS)
    assert max(counts.values()) > 1.3 * min(counts.values())


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_seed_per_class": 0}, "n_seed_per_class"),
        ({"n_drop": 0}, "n_drop"),
        ({"n_bad_items": -1}, "n_bad_items"),
        ({"seed": -1}, "seed"),
        ({"hard_fraction": 1.0}, "hard_fraction"),
        ({"hard_fraction": -0.1}, "hard_fraction"),
        ({"long_fraction": 1.0}, "long_fraction"),
        ({"long_fraction": -0.5}, "long_fraction"),
        ({"long_fraction": 0.5, "hard_fraction": 0.6}, "long_fraction"),
        ({"classes": ("billing",)}, "classes"),
        ({"classes": ("billing", "billing")}, "classes"),
        ({"classes": ("billing", "weather")}, "classes"),
    ],
)
def test_spec_validation(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        TextDemoSpec(**kwargs)  # type: ignore[arg-type]


def test_render_text_contract() -> None:
    for topic in DEFAULT_TOPICS:
        for hard in (False, True):
            for k in range(20):
                text = render_text(topic, np.random.default_rng([k, hard]), hard)
                assert isinstance(text, str)
                assert text.strip()
                assert "{" not in text  # every slot filled
    a = render_text("billing", np.random.default_rng(3), True, other_topic="shipping")
    b = render_text("billing", np.random.default_rng(3), True, other_topic="shipping")
    assert a == b
    with pytest.raises(ValueError, match="topic"):
        render_text("weather", np.random.default_rng(0), False)
    with pytest.raises(ValueError, match="other_topic"):
        render_text("billing", np.random.default_rng(0), True, other_topic="weather")
    with pytest.raises(ValueError, match="other_topic"):
        render_text("billing", np.random.default_rng(0), True, other_topic="billing")
    with pytest.raises(ValueError, match="hard"):
        render_text("billing", np.random.default_rng(0), False, other_topic="shipping")


_TOKEN = re.compile(r"[a-z]+")


class _SparseBow:
    """Binary bag of words, L2-normalised rows, as (row, col, value) triplets.

    Products go through `np.bincount`: the matrices are tiny, and BLAS threads on a busy
    machine would cost far more than the arithmetic.
    """

    def __init__(self, texts: list[str], vocab: dict[str, int]) -> None:
        rows: list[int] = []
        cols: list[int] = []
        for i, text in enumerate(texts):
            hits = {vocab[w] for w in _TOKEN.findall(text.lower()) if w in vocab}
            rows += [i] * len(hits)
            cols += sorted(hits)
        self.n, self.dim = len(texts), len(vocab)
        self.rows, self.cols = np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)
        norms = np.sqrt(np.bincount(self.rows, minlength=self.n))
        self.vals = 1.0 / norms[self.rows]

    def dot(self, w: np.ndarray) -> np.ndarray:  # X @ w
        return np.stack(
            [
                np.bincount(self.rows, self.vals * w[self.cols, k], minlength=self.n)
                for k in range(w.shape[1])
            ],
            axis=1,
        )

    def tdot(self, g: np.ndarray) -> np.ndarray:  # X.T @ g
        return np.stack(
            [
                np.bincount(self.cols, self.vals * g[self.rows, k], minlength=self.dim)
                for k in range(g.shape[1])
            ],
            axis=1,
        )


def test_learnable_on_easy_items_harder_on_hard_ones(tmp_path: Path) -> None:
    """A bag-of-words softmax regression trained on the seed: easy items are learnable,
    hard ones clearly less so (a sentence encoder should do at least as well)."""
    spec = TextDemoSpec(n_seed_per_class=60, n_drop=600, hard_fraction=0.2, long_fraction=0.0)
    paths = write_text_demo(tmp_path, spec)
    classes = list(spec.classes)
    seed = _read_jsonl(paths.seed_path)
    vocab: dict[str, int] = {}
    for row in seed:
        for word in _TOKEN.findall(row["text"].lower()):
            vocab.setdefault(word, len(vocab))
    x = _SparseBow([r["text"] for r in seed], vocab)
    y = np.eye(len(classes))[[classes.index(r["label"]) for r in seed]]
    w = np.zeros((x.dim, len(classes)))
    b = np.zeros(len(classes))
    for _ in range(300):
        z = x.dot(w) + b
        p = np.exp(z - z.max(axis=1, keepdims=True))
        g = (p / p.sum(axis=1, keepdims=True) - y) / len(y)
        w -= 2.0 * (x.tdot(g) + 1e-3 * w)
        b -= 2.0 * g.sum(axis=0)

    texts = {r["item_id"]: r["text"] for r in _read_jsonl(paths.drop_manifest)}
    rows = [r for r in _read_truth(paths.truth_path) if r["label"]]
    pred = (_SparseBow([texts[r["item_id"]] for r in rows], vocab).dot(w) + b).argmax(axis=1)
    correct = pred == np.array([classes.index(r["label"]) for r in rows])
    hard = np.array([r["hard"] == "1" for r in rows])
    easy_acc, hard_acc = float(correct[~hard].mean()), float(correct[hard].mean())
    print(f"bag-of-words accuracy: easy {easy_acc:.3f}, hard {hard_acc:.3f}")
    assert easy_acc > 0.9
    assert hard_acc < easy_acc - 0.12
    assert hard_acc > 1.5 / len(classes)  # hard, not pure noise
