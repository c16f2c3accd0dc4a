"""Synthetic text data drop (support tickets / product reviews) for the demo and the tests.

Why: the text demo and its tests need a workload that behaves like a real ticket queue
without shipping a data set. A sentence encoder with a linear head should learn the topics
quickly on the easy items (each topic has its own vocabulary), while a controlled share of
hard items (two topics mixed, vague wording, very short messages) spreads the classifier's
confidences so calibration, per-class thresholds and the review sample have something real
to do. Products, order numbers, dates, names and the usual greetings are shared by every
topic, so they carry no signal. A few very long items exercise truncation, and planted bad
files (empty, binary, not UTF-8, whitespace only) exercise the error table.

This module plans and writes the files; what one item reads like lives in
:mod:`raylabel.demo.text_render`, the word lists in :mod:`raylabel.demo.text_vocabulary`.

Everything is a pure function of :class:`TextDemoSpec`: the same spec writes byte-identical
files.
"""

from __future__ import annotations

import csv
import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raylabel.demo.text_render import (
    HARD_MODE_P,
    HARD_MODES,
    render_item,
    render_long_thread,
    render_text,
)
from raylabel.demo.text_vocabulary import DEFAULT_TOPICS, TEMPLATES

__all__ = [
    "DEFAULT_TOPICS",
    "TextDemoPaths",
    "TextDemoSpec",
    "render_text",
    "write_text_demo",
]

# Streams of the per-item random generators, so seed and drop are independent draws.
_STREAM_DROP_PLAN = 1
_STREAM_SEED_ITEMS = 2
_STREAM_DROP_ITEMS = 3
_STREAM_BAD_ITEMS = 4
_STREAM_SEED_PLAN = 5

# Kinds of unusable files planted in the drop, in the order they are used.
_BAD_KINDS: tuple[str, ...] = ("empty", "binary", "latin1", "whitespace")


# --------------------------------------------------------------------------- bad items


def _bad_item(kind: str, r: random.Random) -> bytes:
    """Bytes of an unusable drop item of the given kind."""
    if kind == "empty":
        return b""
    if kind == "binary":  # an image dumped under a .txt name: NULs everywhere
        body = bytearray(r.randbytes(r.randrange(300, 900)))
        body[::7] = bytes(len(body[::7]))
        return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(body)
    if kind == "latin1":  # a legacy mail client: accents as single Latin-1 bytes
        text = (
            f"Bonjour, ma commande n°{r.randrange(10_000, 99_999)} n'est toujours pas "
            "arrivée. Très déçu du délai, merci de répondre rapidement.\n"
            "Cordialement, Zoë Lefèvre"
        )
        return text.encode("latin-1")
    if kind == "whitespace":
        return b"  \n\t \r\n    \n"
    raise ValueError(f"unknown bad item kind {kind!r}")


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class TextDemoSpec:
    """Makes the whole text demo a pure function of one value, so reruns are reproducible."""

    n_seed_per_class: int = 80
    n_drop: int = 1200
    hard_fraction: float = 0.15  # ambiguous items mixing two topics, vague wording, typos/noise
    seed: int = 0
    classes: tuple[str, ...] = DEFAULT_TOPICS
    n_bad_items: int = 3  # planted bad drop items: empty, binary, Latin-1, whitespace, ...
    long_fraction: float = 0.02  # very long items (several thousand words), drop only

    def __post_init__(self) -> None:
        """Fail fast with the offending field's name, before any file is written."""
        if self.n_seed_per_class <= 0:
            raise ValueError(f"n_seed_per_class must be > 0, got {self.n_seed_per_class}")
        if self.n_drop <= 0:
            raise ValueError(f"n_drop must be > 0, got {self.n_drop}")
        if self.n_bad_items < 0:
            raise ValueError(f"n_bad_items must be >= 0, got {self.n_bad_items}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if not 0.0 <= self.hard_fraction < 1.0:
            raise ValueError(f"hard_fraction must be in [0, 1), got {self.hard_fraction}")
        if not 0.0 <= self.long_fraction < 1.0:
            raise ValueError(f"long_fraction must be in [0, 1), got {self.long_fraction}")
        if self.hard_fraction + self.long_fraction > 1.0:
            raise ValueError(
                f"long_fraction + hard_fraction must be <= 1 (long items are easy ones), "
                f"got {self.long_fraction} + {self.hard_fraction}"
            )
        if len(self.classes) < 2:
            raise ValueError(f"classes needs at least 2 topics, got {self.classes!r}")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be unique, got {self.classes!r}")
        unknown = [c for c in self.classes if c not in TEMPLATES]
        if unknown:
            raise ValueError(
                f"classes contains topics without templates: {unknown}; "
                f"choose from {sorted(TEMPLATES)}"
            )


@dataclass(frozen=True)
class TextDemoPaths:
    """Tells callers where :func:`write_text_demo` put things, so none hard-codes the layout."""

    root: Path
    seed_path: Path  # <root>/seed/seed.jsonl — rows {"item_id", "text", "label"}
    drop_dir: Path  # <root>/drop/ — one UTF-8 .txt file per item (+ the bad items)
    drop_manifest: Path  # <root>/drop.jsonl — the good drop items as {"item_id", "text"}
    truth_path: Path  # <root>/truth/drop_truth.csv — not inside drop_dir


def _exact_hard_flags(rng: np.random.Generator, n: int, fraction: float) -> np.ndarray:
    """Exactly round(fraction * n) hard items, at random positions."""
    flags = np.zeros(n, dtype=bool)
    flags[rng.permutation(n)[: round(fraction * n)]] = True
    return flags


def _hard_plan(
    rng: np.random.Generator, labels: np.ndarray, hard: np.ndarray, n_classes: int
) -> tuple[list[str], list[int]]:
    """Per item: the mode ("easy" or a hard mode) and the mixed-in class (-1 if none)."""
    modes = rng.choice(len(HARD_MODES), size=len(labels), p=HARD_MODE_P)
    shift = rng.integers(1, n_classes, size=len(labels))  # another class, uniformly
    out_modes: list[str] = []
    out_other: list[int] = []
    for lab, is_hard, m, s in zip(labels, hard, modes, shift, strict=True):
        mode = HARD_MODES[int(m)] if is_hard else "easy"
        out_modes.append(mode)
        out_other.append(int((lab + s) % n_classes) if mode == "mixed" else -1)
    return out_modes, out_other


def _item_seed(seed: int, stream: int, index: int) -> str:
    """Seed of one item's generator (str seeds hash stably across runs and platforms)."""
    return f"raylabel-demo-texts/{seed}/{stream}/{index}"


def _jsonl(rows: list[dict[str, str]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


@dataclass(frozen=True)
class _DropPlan:
    """Everything drawn for the drop before any text is, so item texts never shift the plan.

    Which file numbers are bad, and per good item its class, hard flag, mode, mixed-in
    class and whether it is a long thread.
    """

    total: int  # drop files, good and bad
    bad_positions: set[int]
    labels: np.ndarray  # class index per good item
    hard: np.ndarray  # bool per good item
    modes: list[str]
    others: list[int]  # mixed-in class per good item, -1 if none
    long_items: set[int]  # good-item numbers written as long threads


def _plan_drop(spec: TextDemoSpec) -> _DropPlan:
    """Mildly imbalanced classes with exact hard and long shares, from the spec's seed."""
    n_classes = len(spec.classes)
    plan = np.random.default_rng([spec.seed, _STREAM_DROP_PLAN])
    total = spec.n_drop + spec.n_bad_items
    bad_positions = set(plan.permutation(total)[: spec.n_bad_items].tolist())
    weights = plan.uniform(0.6, 1.4, size=n_classes)
    labels = plan.choice(n_classes, size=spec.n_drop, p=weights / weights.sum())
    hard_flags = _exact_hard_flags(plan, spec.n_drop, spec.hard_fraction)
    modes, others = _hard_plan(plan, labels, hard_flags, n_classes)
    n_long = round(spec.long_fraction * spec.n_drop)
    if spec.long_fraction > 0:
        n_long = min(max(n_long, 1), int((~hard_flags).sum()))
    easy_idx = np.flatnonzero(~hard_flags)
    long_items = set(plan.permutation(easy_idx)[:n_long].tolist())
    return _DropPlan(total, bad_positions, labels, hard_flags, modes, others, long_items)


def _fresh_layout(root: Path) -> TextDemoPaths:
    """The demo's paths under `root`, with any previous demo files removed."""
    paths = TextDemoPaths(
        root=root,
        seed_path=root / "seed" / "seed.jsonl",
        drop_dir=root / "drop",
        drop_manifest=root / "drop.jsonl",
        truth_path=root / "truth" / "drop_truth.csv",
    )
    for d in (paths.seed_path.parent, paths.drop_dir, paths.truth_path.parent):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    paths.drop_manifest.unlink(missing_ok=True)
    return paths


def _seed_rows(spec: TextDemoSpec) -> list[dict[str, str]]:
    """Seed set rows: per class, exact hard share; one independent generator per item."""
    n_classes = len(spec.classes)
    plan = np.random.default_rng([spec.seed, _STREAM_SEED_PLAN])
    labels = np.repeat(np.arange(n_classes), spec.n_seed_per_class)
    hard = np.concatenate(
        [_exact_hard_flags(plan, spec.n_seed_per_class, spec.hard_fraction) for _ in spec.classes]
    )
    modes, others = _hard_plan(plan, labels, hard, n_classes)
    order = plan.permutation(len(labels))
    rows = []
    for pos, i in enumerate(order.tolist()):
        r = random.Random(_item_seed(spec.seed, _STREAM_SEED_ITEMS, i))
        label = spec.classes[int(labels[i])]
        other = spec.classes[others[i]] if others[i] >= 0 else None
        text = render_item(label, r, modes[i], other)
        rows.append({"item_id": f"seed-{pos:06d}", "text": text, "label": label})
    return rows


def _good_drop_text(spec: TextDemoSpec, plan: _DropPlan, good: int, label: str) -> str:
    """Text of the `good`-th good drop item, from its own generator."""
    r = random.Random(_item_seed(spec.seed, _STREAM_DROP_ITEMS, good))
    if good in plan.long_items:
        return render_long_thread(label, r)
    other = spec.classes[plan.others[good]] if plan.others[good] >= 0 else None
    return render_item(label, r, plan.modes[good], other)


def _write_drop_files(
    drop_dir: Path, spec: TextDemoSpec, plan: _DropPlan
) -> tuple[list[dict[str, str]], list[tuple[str, str, int]]]:
    """Write every drop file, bad ones among the good; return manifest rows and truth rows."""
    truth: list[tuple[str, str, int]] = []
    manifest: list[dict[str, str]] = []
    good = bad = 0
    for idx in range(plan.total):
        name = f"item-{idx:06d}.txt"
        if idx in plan.bad_positions:
            r = random.Random(_item_seed(spec.seed, _STREAM_BAD_ITEMS, bad))
            data = _bad_item(_BAD_KINDS[bad % len(_BAD_KINDS)], r)
            truth.append((name, "", 0))
            bad += 1
        else:
            label = spec.classes[int(plan.labels[good])]
            text = _good_drop_text(spec, plan, good, label)
            data = text.encode("utf-8")
            truth.append((name, label, int(plan.hard[good])))
            manifest.append({"item_id": name, "text": text})
            good += 1
        (drop_dir / name).write_bytes(data)
    return manifest, truth


def _write_truth(path: Path, truth: list[tuple[str, str, int]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["item_id", "label", "hard"])
        writer.writerows(truth)


def write_text_demo(root: Path | str, spec: TextDemoSpec = TextDemoSpec()) -> TextDemoPaths:
    """Gives the text demo and its tests a ticket queue whose truth is known, shipping no data.

    Writes a seed set, a drop (folder and manifest) and the drop's truth under `root`.

    Layout:

    - ``<root>/seed/seed.jsonl`` — labeled seed set, rows ``{"item_id", "text", "label"}``
      with ids ``seed-NNNNNN``, classes shuffled together; exactly ``n_seed_per_class``
      rows per class of which ``round(hard_fraction * n_seed_per_class)`` are hard.
    - ``<root>/drop/item-NNNNNN.txt`` — ``n_drop + n_bad_items`` files, one UTF-8 item
      each, names that do not reveal the class. Classes are mildly imbalanced, as in real
      drops; ``round(hard_fraction * n_drop)`` items are hard and ``round(long_fraction *
      n_drop)`` (at least one when ``long_fraction > 0``) easy items are email threads of
      several thousand words. The bad items (empty file, binary bytes with NULs, Latin-1
      text that is invalid UTF-8, whitespace only; cycling in that order) are numbered
      among the good ones.
    - ``<root>/drop.jsonl`` — the same good drop items as rows ``{"item_id", "text"}``,
      ``item_id`` being the file name and ``text`` exactly the file's content; for the
      manifest input path. Bad items are not in it.
    - ``<root>/truth/drop_truth.csv`` — columns ``item_id,label,hard`` for every file in the
      drop folder; ``hard`` is 0/1, bad items have an empty ``label`` and ``hard`` = 0. It
      lives outside the drop folder: the pipeline must never read it.

    Any previous ``seed``, ``drop`` and ``truth`` folders and ``drop.jsonl`` under `root`
    are removed first, so reruns overwrite cleanly. The same spec gives byte-identical
    files.
    """
    paths = _fresh_layout(Path(root))
    paths.seed_path.write_bytes(_jsonl(_seed_rows(spec)))
    manifest, truth = _write_drop_files(paths.drop_dir, spec, _plan_drop(spec))
    paths.drop_manifest.write_bytes(_jsonl(manifest))
    _write_truth(paths.truth_path, truth)
    return paths
