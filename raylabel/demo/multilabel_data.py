"""What the multi-label demos (images and texts) share: label sets, seed manifests, truth.

Why a module of its own: both generators draw each class independently, write the seed as a
manifest whose `label` is a list (JSONL) or a `|`-joined string (CSV), and keep the drop's
true label sets in a Parquet file outside the drop; one implementation keeps the two demos
graded by the same rules.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

#: Seed manifest formats the multi-label demos write.
SEED_FORMATS: tuple[str, ...] = ("jsonl", "csv")

TRUTH_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("labels", pa.list_(pa.string())),  # null: an unreadable item with no truth
        ("hard", pa.bool_()),
    ]
)


def check_common(
    classes: Sequence[str],
    prevalence: tuple[float, float],
    seed_format: str,
    hard_fraction: float,
) -> None:
    """Fail fast, naming the field, on what every multi-label spec shares."""
    if len(classes) < 2:
        raise ValueError(f"classes needs at least 2 names, got {tuple(classes)!r}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must be unique, got {tuple(classes)!r}")
    lo, hi = prevalence
    if not 0.0 < lo <= hi < 1.0:
        raise ValueError(f"prevalence must be (lo, hi) with 0 < lo <= hi < 1, got {prevalence}")
    if seed_format not in SEED_FORMATS:
        raise ValueError(f"seed_format must be one of {SEED_FORMATS}, got {seed_format!r}")
    if not 0.0 <= hard_fraction < 1.0:
        raise ValueError(f"hard_fraction must be in [0, 1), got {hard_fraction}")


def draw_label_sets(rng: np.random.Generator, n: int, rates: np.ndarray) -> np.ndarray:
    """An (n, classes) boolean matrix: each class present independently at its own rate."""
    return rng.random((n, len(rates))) < rates[None, :]


def class_rates(
    rng: np.random.Generator, n_classes: int, prevalence: tuple[float, float]
) -> np.ndarray:
    """Each class's prevalence, drawn uniformly in `prevalence` so classes differ mildly."""
    return rng.uniform(prevalence[0], prevalence[1], size=n_classes)


def names_of(row: np.ndarray, classes: Sequence[str]) -> list[str]:
    """The class names a row of the presence matrix holds, in the spec's class order."""
    return [classes[k] for k in np.flatnonzero(row).tolist()]


def write_seed_manifest(
    path: Path, rows: list[dict[str, Any]], fmt: str, separator: str = "|"
) -> None:
    """Seed rows with a list `label`: JSON lists in JSONL, `separator`-joined strings in CSV."""
    if fmt == "jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        path.write_bytes(text.encode("utf-8"))
        return
    if fmt != "csv":
        raise ValueError(f"seed manifest format must be one of {SEED_FORMATS}, got {fmt!r}")
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "label": separator.join(r["label"])})


def write_truth(path: Path, rows: list[tuple[str, list[str] | None, bool]]) -> None:
    """The drop's true label sets (item_id, labels, hard) as Parquet, outside the drop."""
    ids, labels, hard = zip(*rows, strict=True) if rows else ((), (), ())
    table = pa.table(
        {"item_id": list(ids), "labels": list(labels), "hard": list(hard)}, schema=TRUTH_SCHEMA
    )
    pq.write_table(table, path)
