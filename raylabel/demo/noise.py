"""Planted label noise for the seed audit's known-answer checks (bench and tests).

Why: the audit can only be graded against errors we know about. This turns a clean
image-folder seed into a manifest whose labels are wrong for an exact, deterministic share
of items, and says which ones.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def plant_label_flips(
    seed_dir: Path, out_csv: Path, fraction: float, seed: int = 0
) -> tuple[Path, set[str]]:
    """Gives the seed audit label errors whose answer is known, so its findings can be graded.

    Writes `item_id,uri,label` for every file under `seed_dir/<class>/`, with exactly
    round(fraction * n) labels changed to another class (uniformly); returns the flipped ids.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    classes = sorted(p.name for p in seed_dir.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise ValueError(f"{seed_dir}: need at least 2 class folders, found {classes}")
    items = [
        (f"{c}/{f.name}", str(f.resolve()), c)
        for c in classes
        for f in sorted((seed_dir / c).iterdir())
        if f.is_file()
    ]
    rng = np.random.default_rng([seed, 9])
    chosen = set(rng.permutation(len(items))[: round(fraction * len(items))].tolist())
    flipped: set[str] = set()
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with out_csv.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["item_id", "uri", "label"])
        for n, (item_id, uri, label) in enumerate(items):
            if n in chosen:
                others = [c for c in classes if c != label]
                label = others[int(rng.integers(len(others)))]
                flipped.add(item_id)
            w.writerow([item_id, uri, label])
    return out_csv, flipped
