"""Synthetic multi-label ticket queue: each ticket tagged with a set of topics.

Why: the text side of `demo --task multilabel`. A ticket about a double charge *and* a
late parcel carries both tags; each topic speaks with its own vocabulary (the single-label
text demo's sentences), so MiniLM or the seed-trained RNN learns each tag on its own, while
a share of hard tickets states one of their topics only vaguely. Tickets with no topic are
context only ("My order number is ..."). Planted bad files exercise the error table.

Same layout as the single-label text demo (inline-text seed JSONL, a drop folder plus its
manifest), with the label a list and the truth in Parquet. Everything is a pure function
of :class:`MultilabelTextSpec`: the same spec writes byte-identical files.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raylabel.demo.images import exact_hard_flags
from raylabel.demo.multilabel_data import (
    check_common,
    class_rates,
    draw_label_sets,
    names_of,
    write_seed_manifest,
    write_truth,
)
from raylabel.demo.text_render import render_tagged
from raylabel.demo.text_vocabulary import TEMPLATES

#: The multi-label text demo's topics: the single-label demo's complaints (no praise).
MULTILABEL_TOPICS: tuple[str, ...] = ("billing", "shipping", "technical", "account", "returns")

_STREAM_PLAN = 21
_STREAM_SEED_ITEMS = 22
_STREAM_DROP_ITEMS = 23

# Unusable files planted in the drop, cycling in this order.
_BAD_ITEMS: tuple[bytes, ...] = (
    b"",
    b"  \n\t \r\n    \n",
    "Colis n\u00b0 4471 jamais arriv\u00e9, tr\u00e8s d\u00e9\u00e7u.".encode("latin-1"),
)


@dataclass(frozen=True)
class MultilabelTextSpec:
    """Makes the multi-label text demo a pure function of one value, so reruns agree."""

    n_seed: int = 900
    n_drop: int = 1200
    classes: tuple[str, ...] = MULTILABEL_TOPICS
    prevalence: tuple[float, float] = (0.25, 0.45)  # range of each topic's presence rate
    hard_fraction: float = 0.1  # tickets with one topic stated only vaguely
    n_bad_items: int = 3  # empty, whitespace-only, Latin-1 (invalid UTF-8), ...
    seed_format: str = "jsonl"  # "jsonl": label is a list; "csv": label joined by "|"
    seed: int = 0

    def __post_init__(self) -> None:
        """Fail fast with the offending field's name, before any file is written."""
        check_common(self.classes, self.prevalence, self.seed_format, self.hard_fraction)
        unknown = [c for c in self.classes if c not in TEMPLATES]
        if unknown:
            raise ValueError(
                f"classes: no sentences for {unknown}; choose from {sorted(TEMPLATES)}"
            )
        if self.n_seed <= 0 or self.n_drop <= 0:
            raise ValueError(f"n_seed and n_drop must be > 0, got {self.n_seed}, {self.n_drop}")
        if self.n_bad_items < 0:
            raise ValueError(f"n_bad_items must be >= 0, got {self.n_bad_items}")


@dataclass(frozen=True)
class MultilabelTextPaths:
    """Tells callers where :func:`write_multilabel_text_demo` put things."""

    root: Path
    seed_path: Path  # <root>/seed/seed.jsonl|csv — item_id, text, label (a set)
    drop_dir: Path  # <root>/drop/item-NNNNNN.txt (+ the bad items)
    drop_manifest: Path  # <root>/drop.jsonl — the good drop items as {"item_id", "text"}
    truth_path: Path  # <root>/truth/drop_truth.parquet — not inside drop_dir


def _ticket(spec: MultilabelTextSpec, stream: int, i: int, topics: list[str], hard: bool) -> str:
    """One ticket from its own generator; a hard one states a random topic vaguely."""
    r = random.Random(f"raylabel-demo-ml-texts/{spec.seed}/{stream}/{i}")
    vague = topics[r.randrange(len(topics))] if hard and topics else None
    return render_tagged(topics, r, vague)


def _fresh(root: Path, spec: MultilabelTextSpec) -> MultilabelTextPaths:
    paths = MultilabelTextPaths(
        root=root,
        seed_path=root / "seed" / f"seed.{spec.seed_format}",
        drop_dir=root / "drop",
        drop_manifest=root / "drop.jsonl",
        truth_path=root / "truth" / "drop_truth.parquet",
    )
    for d in (paths.seed_path.parent, paths.drop_dir, paths.truth_path.parent):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    return paths


def write_multilabel_text_demo(
    root: Path | str, spec: MultilabelTextSpec = MultilabelTextSpec()
) -> MultilabelTextPaths:
    """Gives `demo --task multilabel --modality text` tickets whose true tag sets are known.

    Layout:

    - ``<root>/seed/seed.jsonl`` (or ``.csv``) — rows ``item_id, text, label`` with ids
      ``seed-NNNNNN`` and `label` the ticket's topics, a JSON list (CSV: joined by ``|``,
      empty for none).
    - ``<root>/drop/item-NNNNNN.txt`` — ``n_drop + n_bad_items`` UTF-8 files (bad ones:
      empty, whitespace only, Latin-1), and ``<root>/drop.jsonl`` with the good ones.
    - ``<root>/truth/drop_truth.parquet`` — ``item_id, labels, hard`` for every drop file
      (item_id = file name); `labels` is null for the bad files. The pipeline never reads it.

    Previous seed, drop and truth folders and drop.jsonl under `root` are removed first.
    """
    paths = _fresh(Path(root), spec)
    plan = np.random.default_rng([spec.seed, _STREAM_PLAN])
    rates = class_rates(plan, len(spec.classes), spec.prevalence)
    seed_sets = draw_label_sets(plan, spec.n_seed, rates)
    seed_hard = exact_hard_flags(plan, spec.n_seed, spec.hard_fraction)
    rows = []
    for i in range(spec.n_seed):
        topics = names_of(seed_sets[i], spec.classes)
        text = _ticket(spec, _STREAM_SEED_ITEMS, i, topics, bool(seed_hard[i]))
        rows.append({"item_id": f"seed-{i:06d}", "text": text, "label": topics})
    write_seed_manifest(paths.seed_path, rows, spec.seed_format)

    total = spec.n_drop + spec.n_bad_items
    bad = set(plan.permutation(total)[: spec.n_bad_items].tolist())
    drop_sets = draw_label_sets(plan, spec.n_drop, rates)
    drop_hard = exact_hard_flags(plan, spec.n_drop, spec.hard_fraction)
    truth: list[tuple[str, list[str] | None, bool]] = []
    manifest: list[str] = []
    good = 0
    for idx in range(total):
        name = f"item-{idx:06d}.txt"
        if idx in bad:
            data = _BAD_ITEMS[(len(truth) - good) % len(_BAD_ITEMS)]
            truth.append((name, None, False))
        else:
            topics = names_of(drop_sets[good], spec.classes)
            hard = bool(drop_hard[good]) and bool(topics)
            text = _ticket(spec, _STREAM_DROP_ITEMS, good, topics, hard)
            data = text.encode("utf-8")
            truth.append((name, topics, hard))
            manifest.append(json.dumps({"item_id": name, "text": text}, ensure_ascii=False))
            good += 1
        (paths.drop_dir / name).write_bytes(data)
    paths.drop_manifest.write_text("".join(m + "\n" for m in manifest), encoding="utf-8")
    write_truth(paths.truth_path, truth)
    return paths
