"""Seed audit: find likely label errors in the seed set before they are trained into a model.

Every seed item gets out-of-sample class probabilities from k-fold training (the k fold
models train in parallel as Ray tasks, with the production model and adapters); cleanlab's
confident learning then ranks the items whose given label disagrees with what the rest of
the seed teaches, with a suggested label. Output, written then committed by `_SUCCESS`:

    <output.root>/audit/<seed fingerprint>/label_issues.parquet, audit.json, report.html

`train.exclude_label_issues=true` trains without the flagged items (reusing a committed
audit of the same seed and settings); `train.audit_seed=true` records the audit on the card.
A `task=multilabel` seed takes the same folds and publishing; sigmoid probabilities and
cleanlab's multi-label ranking (`raylabel.audit.multilabel`) fill MULTILABEL_ISSUES_SCHEMA.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raylabel import __version__, cluster
from raylabel.audit import multilabel
from raylabel.audit.schemas import ISSUES_SCHEMA, UNREADABLE
from raylabel.config import Config
from raylabel.errors import ConfigError, InputError
from raylabel.fit import folds
from raylabel.fit.folds import fold_assignment
from raylabel.inputs import sources
from raylabel.inputs.sources import SourcePlan
from raylabel.io import layout, storage
from raylabel.io.storage import StorageOptions
from raylabel.models.registry import family_for

ISSUES_FILE = "label_issues.parquet"
SUMMARY_FILE = "audit.json"
REPORT_FILE = "report.html"


@dataclass
class AuditResult:
    """What the audit found; `summary` is the audit.json document."""

    audit_dir: str
    summary: dict[str, Any]
    flagged_ids: list[str] = field(default_factory=list)
    reused: bool = False
    duration_s: float = 0.0

    @property
    def n_issues(self) -> int:
        """How many items the audit flagged, read from audit.json's counts, so a reused audit
        answers exactly as the fresh one did."""
        return int(self.summary["counts"]["issues"])

    def summary_lines(self) -> list[str]:
        """What `raylabel audit` prints (the contract every stage result keeps): counts,
        out-of-sample accuracy, the top issues and where the files are, enough to start fixing
        labels from the terminal."""
        s, c = self.summary, self.summary["counts"]
        if s.get("task") == "multilabel":
            return multilabel.summary_lines(s, self.audit_dir, self.reused, self.duration_s)
        acc = s.get("oos_accuracy")
        lines = [
            f"seed audit {'(reused) ' if self.reused else ''}of {c['items']} items "
            f"({s['settings']['folds']} folds, cleanlab {s['settings']['method']}): "
            f"{c['issues']} likely label issues ({c['issues'] / max(c['audited'], 1):.1%})",
            f"out-of-sample accuracy against the given labels: {acc:.3f}"
            if acc is not None
            else "out-of-sample accuracy: n/a",
        ]
        if c["unreadable"]:
            lines.append(f"{c['unreadable']} unreadable items were not audited")
        for row in s.get("top_issues", [])[:5]:
            lines.append(
                f"  {row['item_id']}: given {row['given_label']} -> suggested "
                f"{row['suggested_label']} (quality {row['label_quality']:.3f})"
            )
        lines.append(f"output: {self.audit_dir}")
        lines.append(f"took {self.duration_s:.1f}s")
        return lines


def audit_dir(cfg: Config, fingerprint: str) -> str:
    """Where the audit of one seed lives: keyed by the seed's fingerprint, so an audit is never
    reused for a seed that changed."""
    return storage.join(cfg.output.root, "audit", fingerprint)


def settings(cfg: Config) -> dict[str, Any]:
    """Everything the audit's answer depends on besides the seed itself (reuse key)."""
    a, t, m = cfg.audit, cfg.train, cfg.model
    out = {
        "folds": a.folds,
        "epochs": a.epochs or t.epochs,
        "method": a.method,
        "rank_by": a.rank_by,
        "modality": cfg.modality,
        "arch": m.arch,
        "image_size": m.image_size,
        "max_length": m.max_length,
        "pretrained": m.pretrained,
        "dropout": m.dropout,
        "batch_size": t.batch_size,
        "lr": t.lr,
        "weight_decay": t.weight_decay,
        "warmup_fraction": t.warmup_fraction,
        "augment": t.augment,
        "min_steps": t.min_steps,
        "seed": t.seed,
    }
    if cfg.task == "multilabel":  # multiclass settings stay as they were (committed audits reuse)
        out["task"] = cfg.task
    return out


def audit(cfg: Config) -> AuditResult:
    """Run the seed audit (or reuse a committed one for the same seed and settings)."""
    started = time.time()
    if not family_for(cfg.modality, cfg.model.arch).supports_audit:
        raise ConfigError(
            f"model.arch: the seed audit trains fold models; {cfg.model.arch!r} is not "
            "supported (images: small_cnn, resnet*, mobilenet_v3_small, hf; text: hf)"
        )
    plan = sources.plan_seed(cfg)
    opts = sources.storage_options(cfg)
    out = audit_dir(cfg, plan.fingerprint)
    if cfg.audit.reuse:
        found = load_committed(cfg, plan.fingerprint, opts)
        if found is not None:
            found.duration_s = time.time() - started
            return found
    listing = plan.listing
    assert listing is not None
    classes = plan.classes()
    if len(classes) < 2:
        raise InputError(f"seed.path: need at least 2 classes, found {classes} in {plan.uri}")
    if listing.num_rows < 2 * cfg.audit.folds:
        raise InputError(
            f"seed.path: {listing.num_rows} items are too few for audit.folds={cfg.audit.folds}"
        )
    ids = listing.column("item_id").to_pylist()
    # multiclass: the labels; multilabel: each item's rarest class
    assignment = fold_assignment(ids, plan.strata_labels(), cfg.audit.folds, cfg.train.seed)
    cluster.connect(cfg)
    cluster.quiet_data_context(show_progress=False)
    fold_ds = folds.fold_datasets(cfg, plan, classes, assignment, opts, cfg.audit.folds)
    probs, oof_fold = _out_of_sample(cfg, plan, classes, fold_ds, len(ids))
    if cfg.task == "multilabel":
        table, summary = multilabel.multilabel_learning(
            cfg, plan, classes, probs, oof_fold, settings(cfg)
        )
    else:
        table, summary = confident_learning(cfg, plan, classes, probs, oof_fold)
    summary["duration_s"] = round(time.time() - started, 2)
    _publish(out, table, summary, opts)
    flagged = _flagged(table)
    return AuditResult(out, summary, flagged, False, time.time() - started)


def load_committed(cfg: Config, fingerprint: str, opts: StorageOptions) -> AuditResult | None:
    """A committed audit of this seed made with the same settings, else None."""
    out = audit_dir(cfg, fingerprint)
    if not storage.exists(storage.join(out, layout.SUCCESS), opts):
        return None
    summary = storage.read_json(storage.join(out, SUMMARY_FILE), opts)
    if summary.get("settings") != settings(cfg):
        return None
    table = read_issues(out, opts)
    return AuditResult(out, summary, _flagged(table), reused=True)


def read_issues(out: str, opts: StorageOptions) -> pa.Table:
    """The ranked label_issues table of an audit directory, read back for reuse (the flagged ids)
    and for tools that act on the ranking."""
    return pq.read_table(io.BytesIO(storage.read_bytes(storage.join(out, ISSUES_FILE), opts)))


def _flagged(table: pa.Table) -> list[str]:
    mask = table.column("is_label_issue").fill_null(False)
    return table.filter(mask).column("item_id").to_pylist()


def _out_of_sample(
    cfg: Config, plan: SourcePlan, classes: list[str], fold_ds: list[Any], n_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """k fold tasks in parallel; returns (n_items x classes) probs (NaN = unreadable), fold.
    Multilabel: BCE with the seed's positive weights, per-class sigmoid probabilities."""
    from raylabel.stats.calibration import softmax
    from raylabel.stats.multilabel import sigmoid

    a, t = cfg.audit, cfg.train
    cpus, threads = folds.fold_cpus(a.cpus_per_fold)
    fam = family_for(cfg.modality, cfg.model.arch)
    image_backbone = fam.pretrained == "state_dict" and cfg.model.pretrained
    pretrained = _stage_pretrained(cfg) if image_backbone else None
    config = folds.loop_config(
        cfg, classes, threads, a.epochs or t.epochs, pretrained, use_gpu=a.gpus_per_fold > 0,
        pos_weight=plan.positive_weights(classes),
    )  # fmt: skip
    oof = folds.out_of_fold(
        fold_ds, n_rows, len(classes), config, cpus, a.gpus_per_fold, t.max_failures
    )
    probs = np.full_like(oof.logits, np.nan)
    ok = oof.readable
    probs[ok] = (sigmoid if cfg.task == "multilabel" else softmax)(oof.logits[ok])
    return probs, oof.fold


def _stage_pretrained(cfg: Config) -> str:
    """Image backbones: a local copy (same rules as training: .safetensors only)."""
    import tempfile
    from pathlib import Path

    from raylabel.fit.pretrained import pretrained_local

    tmp = Path(tempfile.mkdtemp(prefix="raylabel-audit-"))
    local = pretrained_local(cfg, tmp)
    assert local is not None
    return local


def confident_learning(
    cfg: Config, plan: SourcePlan, classes: list[str], probs: np.ndarray, oof_fold: np.ndarray
) -> tuple[pa.Table, dict[str, Any]]:
    """cleanlab over the out-of-sample probabilities -> ranked table + summary."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    listing = plan.listing
    assert listing is not None
    ids = listing.column("item_id").to_pylist()
    uris = listing.column("uri").to_pylist() if "uri" in listing.column_names else list(ids)
    given = listing.column("label").to_pylist()
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[g] for g in given], dtype=np.int64)
    ok = ~np.isnan(probs).any(axis=1)
    n = len(ids)
    issue = np.zeros(n, dtype=bool)
    quality = np.full(n, np.nan)
    if ok.sum() >= 2:
        p = np.clip(probs[ok], 1e-12, None)
        p = p / p.sum(axis=1, keepdims=True)
        issue[ok] = find_label_issues(y[ok], p, filter_by=cfg.audit.method, n_jobs=1)
        quality[ok] = get_label_quality_scores(y[ok], p, method=cfg.audit.rank_by)
    suggested = np.where(ok, np.nan_to_num(probs).argmax(axis=1), -1)
    given_prob = np.where(ok, np.nan_to_num(probs)[np.arange(n), y], np.nan)
    sugg_prob = np.where(ok, np.nan_to_num(probs).max(axis=1), np.nan)
    # flagged first, then by label quality (lowest = most likely wrong); unreadable last
    order = np.lexsort((np.nan_to_num(quality, nan=2.0), ~issue, ~ok))
    rank = np.empty(n, dtype=np.int32)
    rank[order] = np.arange(1, n + 1, dtype=np.int32)
    table = pa.table(
        {
            "item_id": pa.array(ids, pa.string()),
            "uri": pa.array([str(u) for u in uris], pa.string()),
            "given_label": pa.array(given, pa.string()),
            "suggested_label": pa.array(
                [classes[s] if s >= 0 else None for s in suggested], pa.string()
            ),
            "label_quality": pa.array(quality, pa.float32(), mask=~ok),
            "given_prob": pa.array(given_prob, pa.float32(), mask=~ok),
            "suggested_prob": pa.array(sugg_prob, pa.float32(), mask=~ok),
            "is_label_issue": pa.array(issue, pa.bool_()),
            "rank": pa.array(rank, pa.int32()),
            "fold": pa.array(oof_fold, pa.int32()),
            "error": pa.array([None if o else UNREADABLE for o in ok], pa.string()),
        },
        schema=ISSUES_SCHEMA,
    ).take(pa.array(order))
    summary = _summary(cfg, plan, classes, y, ok, issue, suggested, table)
    return table, summary


def _summary(
    cfg: Config,
    plan: SourcePlan,
    classes: list[str],
    y: np.ndarray,
    ok: np.ndarray,
    issue: np.ndarray,
    suggested: np.ndarray,
    table: pa.Table,
) -> dict[str, Any]:
    per_class = {
        c: {"items": int((y == i).sum()), "issues": int((issue & (y == i)).sum())}
        for i, c in enumerate(classes)
    }
    pairs: dict[tuple[str, str], int] = {}
    for g, s in zip(y[issue], suggested[issue], strict=True):
        key = (classes[int(g)], classes[int(s)])
        pairs[key] = pairs.get(key, 0) + 1
    top = table.slice(0, min(int(issue.sum()), 20)).to_pylist()
    return {
        "seed": {"uri": plan.uri, "kind": plan.kind, "fingerprint": plan.fingerprint},
        "settings": settings(cfg),
        "classes": classes,
        "counts": {
            "items": len(y),
            "audited": int(ok.sum()),
            "unreadable": int((~ok).sum()),
            "issues": int(issue.sum()),
        },
        "oos_accuracy": float((suggested[ok] == y[ok]).mean()) if ok.any() else None,
        "per_class": per_class,
        "pairs": [
            {"given": g, "suggested": s, "n": k}
            for (g, s), k in sorted(pairs.items(), key=lambda kv: -kv[1])
        ],
        "top_issues": [
            {k: r[k] for k in ("item_id", "given_label", "suggested_label", "label_quality")}
            for r in top
        ],
        "created_at": layout.utc_now().isoformat(),
        "raylabel_version": __version__,
    }


def _publish(out: str, table: pa.Table, summary: dict[str, Any], opts: StorageOptions) -> None:
    """Marker off, files, marker on: a reader never pairs a marker with half-written files."""
    from raylabel.report.audit_page import render_page

    marker = storage.join(out, layout.SUCCESS)
    if storage.exists(marker, opts):
        storage.delete_tree(marker, opts)
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf)
    storage.write_bytes(storage.join(out, ISSUES_FILE), buf.getvalue().to_pybytes(), opts)
    storage.write_json(storage.join(out, SUMMARY_FILE), summary, opts)
    storage.write_text(storage.join(out, REPORT_FILE), render_page(summary), opts)
    storage.write_json(marker, {"fingerprint": summary["seed"]["fingerprint"]}, opts)


def exclude_from_training(cfg: Config, plan: SourcePlan) -> dict[str, Any] | None:
    """For `train`: run/reuse the audit when asked; drop flagged ids from the plan's listing.

    Returns what the model card records about it (None when no audit was asked for).
    """
    t = cfg.train
    if not (t.audit_seed or t.exclude_label_issues):
        return None
    result = audit(cfg)
    info: dict[str, Any] = {
        "audit_dir": result.audit_dir,
        "fingerprint": result.summary["seed"]["fingerprint"],
        "settings": result.summary["settings"],
        "counts": result.summary["counts"],
        "oos_accuracy": result.summary.get("oos_accuracy"),
        "per_class": result.summary.get("per_class"),
        "pairs": result.summary.get("pairs"),
        "top_issues": result.summary.get("top_issues"),
        "reused": result.reused,
        "excluded": 0,
    }
    if result.summary.get("task") == "multilabel":  # the report shows label sets then
        info["task"] = "multilabel"
    if t.exclude_label_issues and plan.listing is not None and result.flagged_ids:
        flagged = set(result.flagged_ids)
        listing = plan.listing
        keep = pa.array([i not in flagged for i in listing.column("item_id").to_pylist()])
        plan.listing = listing.filter(keep)
        info["excluded"] = listing.num_rows - plan.listing.num_rows
    return info
