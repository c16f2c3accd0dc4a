"""Self-training across drops: accepted labels of earlier committed runs as extra training data.

Pseudo-labels are only as good as the precision of accepted labels, and the only evidence
of that precision a user has is the review-based estimate (`evaluation.json`). So the gate
is that estimate: pseudo-labels are used only while the latest one (by default its lower
confidence bound, the conservative reading) meets `qc.target_precision`, and a run whose own
estimate misses the target never contributes. Refusal is not an error: training goes on
with human labels only and the model card says why.

Selection is bounded and deterministic: two streaming passes over column projections of
each run's `labels/` (per-class counts, then per class the k accepted rows with the
smallest `hash(train.seed, drop, item_id)`), so only the capped selection reaches the driver.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from raylabel.config import Config
from raylabel.io import layout, storage
from raylabel.io.listing import list_dirs, list_files
from raylabel.io.storage import StorageOptions

# run inputs whose labeled rows carry a uri the trainer can fetch again
_FETCHABLE_KINDS = ("folder", "manifest")
_SCAN_BATCH_ROWS = 65_536


@dataclass
class RunRef:
    """A committed run (the LATEST of its drop) and what the gate needs to know about it."""

    drop: str
    run_id: str
    created_at: str
    input_kind: str
    modality: str
    evaluation: dict[str, Any] | None

    @property
    def name(self) -> str:
        """`drop/run_id`: how the gate's reasons and the card's provenance name a run."""
        return f"{self.drop}/{self.run_id}"

    def accepted_estimate(self) -> dict[str, Any] | None:
        """The run's review-based estimate of accepted precision, or None when it has none: the only
        evidence the gate accepts."""
        est = (self.evaluation or {}).get("accepted")
        return est if est and est.get("point") is not None else None


@dataclass
class Gate:
    """Whether pseudo-labels may be used, and the evidence for the decision."""

    passed: bool
    reason: str
    criterion: str
    target: float
    value: float | None = None
    run: str | None = None
    estimate: dict[str, Any] | None = None
    evaluated_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The decision with its evidence, flattened for the model card, so a reader sees why
        pseudo-labels were or were not used."""
        est = self.estimate or {}
        return {
            "passed": self.passed,
            "reason": self.reason,
            "criterion": self.criterion,
            "target": self.target,
            "value": self.value,
            "run": self.run,
            "point": est.get("point"),
            "lower": est.get("lower"),
            "upper": est.get("upper"),
            "n_reviewed": est.get("n_reviewed"),
            "confidence_level": est.get("confidence_level"),
            "evaluated_at": self.evaluated_at,
        }


@dataclass
class PseudoSelection:
    """The chosen pseudo-labels (item_id, uri, label, source) and their provenance."""

    status: str  # disabled | refused | used | none
    reason: str
    weight: float
    table: pa.Table | None = None
    gate: Gate | None = None
    per_run: dict[str, int] = field(default_factory=dict)
    per_class: dict[str, int] = field(default_factory=dict)
    candidates: dict[str, int] = field(default_factory=dict)
    skipped_runs: dict[str, str] = field(default_factory=dict)
    cap_total: int = 0
    cap_per_class: int = 0

    @property
    def used(self) -> int:
        """How many pseudo-labels were chosen (0 when none); training adds them, and weighs rows,
        only when it is non-zero."""
        return self.table.num_rows if self.table is not None else 0

    def to_card(self) -> dict[str, Any]:
        """The model card's `pseudo_labels` field."""
        return {
            "status": self.status,
            "reason": self.reason,
            "used": self.used,
            "weight": self.weight,
            "per_run": dict(self.per_run),
            "per_class": dict(self.per_class),
            "candidates_per_class": dict(self.candidates),
            "skipped_runs": dict(self.skipped_runs),
            "cap_total": self.cap_total,
            "cap_per_class": self.cap_per_class,
            "gate": self.gate.to_json() if self.gate else None,
        }


def committed_runs(root: str, opts: StorageOptions) -> list[RunRef]:
    """The LATEST committed run of every drop under `root/runs`, newest first."""
    base = storage.join(root, "runs")
    if not storage.exists(base, opts):
        return []
    refs = []
    for drop in list_dirs(base, opts):
        run_id = layout.latest_run(root, drop, opts)
        if not run_id:
            continue
        run = layout.RunLayout(root, drop, run_id)
        summary = storage.read_json(run.path("summary.json"), opts)
        ev_dir = layout.latest_revision(run, "evaluations", opts)  # the newest committed one
        ev_uri = storage.join(ev_dir, "evaluation.json") if ev_dir else None
        evaluation = storage.read_json(ev_uri, opts) if ev_uri else None
        refs.append(
            RunRef(
                drop=drop,
                run_id=run_id,
                created_at=str(summary.get("created_at", "")),
                input_kind=str(summary.get("input", {}).get("kind", "")),
                modality=str(summary.get("modality", "")),
                evaluation=evaluation,
            )
        )
    refs.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
    return refs


def _criterion_value(est: dict[str, Any], criterion: str) -> float | None:
    value = est.get("lower" if criterion == "lower" else "point")
    return None if value is None else float(value)


def _describe(criterion: str) -> str:
    return "accepted precision " + ("lower bound" if criterion == "lower" else "point estimate")


def check_gate(refs: list[RunRef], cfg: Config) -> Gate:
    """The latest review-based estimate of accepted precision against `qc.target_precision`."""
    pl = cfg.train.pseudo_labels
    target = cfg.qc.target_precision
    reviewed = [r for r in refs if r.accepted_estimate() is not None]
    if not reviewed:
        if pl.require_estimate:
            return Gate(
                False,
                "no review-based estimate of accepted precision yet (review a committed run "
                "and run `raylabel evaluate`)",
                pl.gate,
                target,
            )
        return Gate(
            True, "ungated: no review-based estimate yet (require_estimate=false)", pl.gate, target
        )
    latest = max(
        reviewed, key=lambda r: (str((r.evaluation or {}).get("evaluated_at", "")), r.created_at)
    )
    est = latest.accepted_estimate() or {}
    value = _criterion_value(est, pl.gate)
    evaluated_at = (latest.evaluation or {}).get("evaluated_at")
    if value is None:
        return Gate(
            False,
            f"{_describe(pl.gate)} unavailable (run {latest.name})",
            pl.gate,
            target,
            None,
            latest.name,
            est,
            evaluated_at,
        )
    ok = value >= target
    reason = (
        f"{_describe(pl.gate)} {value:.3f} {'>=' if ok else '<'} target {target:g} "
        f"(run {latest.name})"
    )
    return Gate(ok, reason, pl.gate, target, value, latest.name, est, evaluated_at)


def _skip_reason(ref: RunRef, cfg: Config) -> str | None:
    """Why a run's labels must not be used (None: usable)."""
    pl = cfg.train.pseudo_labels
    if ref.input_kind not in _FETCHABLE_KINDS or (
        ref.modality == "text" and ref.input_kind != "folder"
    ):
        return f"input kind {ref.input_kind!r}: items carry no re-readable uri"
    if ref.modality and ref.modality != cfg.modality:
        return f"modality {ref.modality} differs from {cfg.modality}"
    est = ref.accepted_estimate()
    if est is None:
        return (
            "not reviewed (train.pseudo_labels.require_estimate)" if pl.require_estimate else None
        )
    value = _criterion_value(est, pl.gate)
    if value is None or value < cfg.qc.target_precision:
        shown = "n/a" if value is None else f"{value:.3f}"
        return f"own {_describe(pl.gate)} {shown} < target {cfg.qc.target_precision:g}"
    return None


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _accepted_batches(ref: RunRef, root: str, opts: StorageOptions) -> Iterator[pa.RecordBatch]:
    """Accepted rows of a run, three columns at a time, streamed from its labels/ files."""
    import pyarrow.dataset as pads

    run = layout.RunLayout(root, ref.drop, ref.run_id)
    files = list_files(run.labels_dir, opts, extensions=[".parquet"])
    if not files:
        return
    fs, _ = storage.resolve(run.labels_dir, opts)
    ds = pads.dataset(
        [storage.resolve(f.uri, opts)[1] for f in files], filesystem=fs, format="parquet"
    )
    yield from ds.to_batches(
        columns=["item_id", "uri", "label"],
        filter=pads.field("accepted"),
        batch_size=_SCAN_BATCH_ROWS,
    )


def _keep_mask(batch: pa.RecordBatch, classes: set[str], exclude: set[str]) -> list[bool]:
    return [
        lab in classes and uri not in exclude
        for lab, uri in zip(
            batch.column("label").to_pylist(), batch.column("uri").to_pylist(), strict=True
        )
    ]


def select(
    cfg: Config,
    classes: list[str],
    n_labeled: int,
    exclude_uris: set[str],
    opts: StorageOptions,
) -> PseudoSelection:
    """Gate, then choose class-balanced, capped, deterministic pseudo-labels."""
    pl = cfg.train.pseudo_labels
    if not pl.enabled:
        return PseudoSelection("disabled", "train.pseudo_labels.enabled is false", pl.weight)
    root = cfg.output.root
    refs = committed_runs(root, opts)
    gate = check_gate(refs, cfg)
    if not gate.passed:
        return PseudoSelection("refused", gate.reason, pl.weight, gate=gate)
    exclude = set(exclude_uris) | _reviewed_uris(root, opts)
    usable, skipped = [], {}
    for ref in refs[: pl.max_runs]:
        why = _skip_reason(ref, cfg)
        if why:
            skipped[ref.name] = why
        else:
            usable.append(ref)
    wanted = set(classes)
    counts: dict[str, int] = {}
    for ref in usable:  # pass 1: how many candidates each class has
        for batch in _accepted_batches(ref, root, opts):
            kept = batch.filter(pa.array(_keep_mask(batch, wanted, exclude)))
            for lab in kept.column("label").to_pylist():
                counts[lab] = counts.get(lab, 0) + 1
    cap_total = min(pl.max_items, math.floor(pl.max_seed_ratio * n_labeled))
    present = {c: n for c, n in counts.items() if n > 0}
    base = PseudoSelection(
        "none",
        gate.reason,
        pl.weight,
        gate=gate,
        skipped_runs=skipped,
        candidates={c: counts.get(c, 0) for c in classes},
        cap_total=cap_total,
    )
    if not present or cap_total < 1:
        base.reason = f"no accepted, unreviewed candidates in usable runs; {gate.reason}"
        return base
    cap_class = min(
        cap_total // len(present), math.ceil(pl.max_per_class_ratio * min(present.values()))
    )
    base.cap_per_class = cap_class
    if cap_class < 1:
        base.reason = f"total cap {cap_total} is below one item per class; {gate.reason}"
        return base
    table = _choose(usable, root, opts, wanted, exclude, cap_class, cfg.train.seed)
    base.table = table
    base.status = "used" if table.num_rows else "none"
    sources = table.column("source").to_pylist()
    labels = table.column("label").to_pylist()
    base.per_run = {r.name: sources.count(r.name) for r in usable if r.name in set(sources)}
    base.per_class = {c: labels.count(c) for c in classes}
    return base


def _choose(
    usable: list[RunRef],
    root: str,
    opts: StorageOptions,
    classes: set[str],
    exclude: set[str],
    k: int,
    seed: int,
) -> pa.Table:
    """Pass 2: per class the k candidates with the smallest hash (bounded heaps)."""
    heaps: dict[str, list[tuple[int, str, str, str]]] = {c: [] for c in classes}
    for ref in usable:
        for batch in _accepted_batches(ref, root, opts):
            kept = batch.filter(pa.array(_keep_mask(batch, classes, exclude)))
            for item_id, uri, lab in zip(
                kept.column("item_id").to_pylist(),
                kept.column("uri").to_pylist(),
                kept.column("label").to_pylist(),
                strict=True,
            ):
                key = _hash64(f"{seed}\x1f{ref.drop}\x1f{item_id}")
                entry = (-key, uri, ref.name, f"pseudo/{ref.name}#{item_id}")
                heap = heaps[lab]
                if len(heap) < k:
                    heapq.heappush(heap, entry)
                elif entry > heap[0]:  # a smaller hash than the largest kept one
                    heapq.heapreplace(heap, entry)
    rows: dict[str, tuple[str, str, str]] = {}
    for lab in sorted(heaps):
        for neg, uri, source, item_id in sorted(heaps[lab], reverse=True):
            del neg
            rows.setdefault(uri, (item_id, lab, source))  # one label per uri
    uris = list(rows)
    return pa.table(
        {
            "item_id": pa.array([rows[u][0] for u in uris], pa.string()),
            "uri": pa.array(uris, pa.string()),
            "label": pa.array([rows[u][1] for u in uris], pa.string()),
            "source": pa.array([rows[u][2] for u in uris], pa.string()),
        }
    )


def for_seed(cfg: Config, plan: Any, classes: list[str], opts: StorageOptions) -> PseudoSelection:
    """`select` for a seed plan; seeds whose items are inline (no uri to fetch) cannot mix in
    pseudo-labels, which are fetched by uri like the seed files."""
    pl = cfg.train.pseudo_labels
    if not pl.enabled:
        return PseudoSelection("disabled", "train.pseudo_labels.enabled is false", pl.weight)
    listing = plan.listing
    if plan.kind == "parquet" or listing is None or "text" in listing.column_names:
        return PseudoSelection(
            "refused",
            "the seed is inline (Parquet or text rows): pseudo-labels need a seed of files",
            pl.weight,
        )
    exclude = set(listing.column("uri").to_pylist())
    return select(cfg, classes, listing.num_rows, exclude, opts)


def _reviewed_uris(root: str, opts: StorageOptions) -> set[str]:
    """Items a human reviewed: their human label is used instead (via feedback), never ours."""
    from raylabel.inputs.sources import feedback_listing

    fb = feedback_listing(root, opts)
    return set(fb.column("uri").to_pylist()) if fb is not None else set()
