"""The promotion gate: a retrained model replaces `models/LATEST` only when it is not worse
than the current one on a fixed evaluation set neither trained on.

The set is the reviewed items whose uri hashes into `train.gate_share` (the same rule at
every training, so no model trains on them). Seed items all train: at tens per class each
one matters, and cross-fitted calibration already uses every seed item out of fold. Both
models score the same items in-process on the driver (the set is small); the verdict, the
metrics and their intervals go on the candidate's card before it is published.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from raylabel.config import Config
from raylabel.errors import InputError
from raylabel.inputs import sources
from raylabel.inputs.prepare import decoded_features, for_card
from raylabel.io import layout, storage
from raylabel.models.card import ModelCard, read_card_uri
from raylabel.models.predictor import Predictor
from raylabel.models.registry import family_of
from raylabel.stats.thresholds import precision_lower_bound, precision_upper_bound

BUCKETS = 10_000
LEVEL = 0.95  # two-sided intervals on the card


def in_gate_set(uri: str, share: float) -> bool:
    """Whether a reviewed item belongs to the gate's evaluation set: a fixed hash of its uri,
    so every training keeps the same items aside."""
    h = int.from_bytes(hashlib.sha256(uri.encode()).digest()[:8], "big")
    return h % BUCKETS < share * BUCKETS


def gate_items(root: str, opts: storage.StorageOptions, share: float) -> pa.Table | None:
    """The reviewed items kept aside (item_id, uri, label), or None when there are none."""
    fb = sources.feedback_listing(root, opts) if share > 0 else None
    if fb is None:
        return None
    keep = pa.array([in_gate_set(u, share) for u in fb.column("uri").to_pylist()])
    kept = fb.filter(keep)
    if not kept.num_rows:
        return None
    # read from the kept copy when there is one: the gate works after the drop is gone
    return pa.table(
        {
            "item_id": kept.column("item_id"),
            "uri": sources.fetchable(kept),
            "label": kept.column("label"),
        }
    )


@dataclass
class Score:
    """One model on the gate set: accuracy of its top label, and coverage (the share its card
    thresholds accept), each with a two-sided interval."""

    version: str
    items: int
    correct: int
    accepted: int
    accepted_correct: int

    def rate(self, k: int, n: int) -> dict[str, float | None]:
        """k/n with its Wilson interval (None when n is 0)."""
        if n == 0:
            return {"value": None, "low": None, "high": None}
        half = 1 - (1 - LEVEL) / 2
        return {
            "value": k / n,
            "low": float(precision_lower_bound(k, n, half, "wilson")),
            "high": float(precision_upper_bound(k, n, half, "wilson")),
        }

    def to_json(self) -> dict[str, Any]:
        """The counts plus accuracy, coverage and accepted precision with intervals."""
        return {
            **asdict(self),
            "accuracy": self.rate(self.correct, self.items),
            "coverage": self.rate(self.accepted, self.items),
            "accepted_precision": self.rate(self.accepted_correct, self.accepted),
        }


def score(
    card: ModelCard, local_dir: Path, model_uri: str, rows: pa.Table, cfg: Config
) -> tuple[Score, np.ndarray]:
    """Score a model on the gate items: (its Score, per-item correctness for the paired
    difference). An item that no longer decodes counts as wrong and not accepted."""
    opts = sources.storage_options(cfg)
    decoded = for_card(card, model_uri, opts, cfg.infer.max_pixels, cfg.infer.max_item_bytes)(
        rows.select(["item_id", "uri"])
    )
    feature = family_of(card).feature
    ok, data = decoded_features(decoded, feature)
    truth = rows.column("label").to_pylist()
    correct = np.zeros(rows.num_rows, dtype=bool)
    accepted = np.zeros(rows.num_rows, dtype=bool)
    if ok.any():
        predictor = Predictor.from_dir(local_dir)
        _, probs = predictor.probabilities({feature: data}, np.arange(len(data)))
        pred = probs.argmax(axis=1)
        conf = probs.max(axis=1)
        thr = np.array([card.class_threshold(int(p)) for p in pred])
        idx = np.flatnonzero(ok)
        correct[idx] = [card.classes[int(p)] == truth[i] for p, i in zip(pred, idx, strict=True)]
        accepted[idx] = conf >= thr
    result = Score(
        card.model_version,
        rows.num_rows,
        int(correct.sum()),
        int(accepted.sum()),
        int((correct & accepted).sum()),
    )
    return result, correct


def decide(cand: Score, cur: Score, paired: np.ndarray, margin: float) -> tuple[bool, str]:
    """(promote?, why): refused when accuracy or coverage falls more than `margin` below the
    current model's (point estimates on the same items)."""
    worse = []
    for name, c, k in (
        ("accuracy", cand.correct, cur.correct),
        ("coverage", cand.accepted, cur.accepted),
    ):
        a, b = c / cand.items, k / cur.items
        if a < b - margin:
            worse.append(f"{name} {a:.3f} < {b:.3f} - {margin:g}")
    diff = float(paired.mean()) if len(paired) else 0.0
    if worse:
        return False, f"not promoted: worse than {cur.version} on {cand.items} gate items (" + (
            "; ".join(worse) + ")"
        )
    return True, (
        f"promoted: not worse than {cur.version} on {cand.items} gate items "
        f"(accuracy {diff:+.3f} paired)"
    )


def gate(cfg: Config, card: ModelCard, candidate_dir: Path) -> dict[str, Any]:
    """Compare the candidate (a local model directory) with the current LATEST model; the
    returned block goes on the candidate's card as `training.promotion`."""
    opts = sources.storage_options(cfg)
    current = layout.latest_model(cfg.output.root, opts)
    base: dict[str, Any] = {"current": current, "gate_share": cfg.train.gate_share}
    if current is None:
        return {**base, "promoted": True, "reason": "promoted: no current model"}
    if card.task == "multilabel":  # reviewed sets do not flow back yet (no gate items)
        why = "promoted: not compared (the gate compares multiclass models only)"
        return {**base, "promoted": True, "reason": why}
    rows = gate_items(cfg.output.root, opts, cfg.train.gate_share)
    n = rows.num_rows if rows is not None else 0
    if rows is None or n < cfg.train.gate_min_items:
        why = f"promoted: not compared ({n} gate items < train.gate_min_items)"
        return {**base, "promoted": True, "reason": why, "items": n}
    cur_uri = layout.model_uri(cfg.output.root, current)
    cur_card = read_card_uri(cur_uri, opts)
    if cur_card.classes != card.classes:
        why = f"promoted: not compared (classes changed since {current})"
        return {**base, "promoted": True, "reason": why, "items": n}
    cand, cand_ok = score(card, candidate_dir, str(candidate_dir), rows, cfg)
    with tempfile.TemporaryDirectory(prefix="raylabel-gate-") as tmp:
        cur_local = layout.fetch_model(cfg.output.root, current, opts, cache_dir=Path(tmp))
        cur, cur_ok = score(cur_card, cur_local, cur_uri, rows, cfg)
    paired = cand_ok.astype(float) - cur_ok.astype(float)
    promoted, why = decide(cand, cur, paired, cfg.train.gate_margin)
    return {
        **base,
        "promoted": promoted,
        "reason": why,
        "items": n,
        "margin": cfg.train.gate_margin,
        "candidate_scores": cand.to_json(),
        "current_scores": cur.to_json(),
        "accuracy_difference": _paired_interval(paired),
    }


def _paired_interval(d: np.ndarray) -> dict[str, float]:
    """Mean of per-item differences (candidate - current) with a normal 95% interval."""
    mean = float(d.mean())
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
    return {"value": mean, "low": mean - 1.96 * se, "high": mean + 1.96 * se}


def promote(cfg: Config) -> PromoteResult:
    """`raylabel promote VERSION`: the manual override; points models/LATEST at a published
    version whatever the gate said."""
    version = cfg.run.model_version
    if not version:
        raise InputError("run.model_version: name the version to promote (raylabel promote m-...)")
    opts = sources.storage_options(cfg)
    uri = layout.model_uri(cfg.output.root, version)
    if not storage.exists(storage.join(uri, layout.CARD_FILE), opts):
        raise InputError(f"run.model_version: no published model at {uri}")
    previous = layout.latest_model(cfg.output.root, opts)
    layout.point_latest_model(cfg.output.root, version, opts)
    return PromoteResult(version, previous, uri)


@dataclass
class PromoteResult:
    """What `raylabel promote` did: which version LATEST names now, and which it named."""

    version: str
    previous: str | None
    uri: str

    def summary_lines(self) -> list[str]:
        """One line: the move of models/LATEST."""
        return [f"models/LATEST: {self.previous or '(none)'} -> {self.version} ({self.uri})"]
