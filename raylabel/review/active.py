"""Active-learning review queue: uncertain by margin, class-balanced, diverse (k-center).

Why: the k least-confident items of a drop are mostly one or two confusable classes and
many near-copies of the same hard case, so a reviewer's hour buys little. The queue takes
a per-class pool of the smallest-margin items (found in the review pass that already
streams the labels), embeds only that pool (one Ray task, penultimate layer), then picks
round-robin over the predicted classes with farthest-first traversal (greedy k-center) on
cosine distance, skipping anything closer to an item already picked than
``review.dedup_fraction`` of the pool's median pairwise distance (relative, so it means
the same for a sharp trained model and a barely trained one whose features all point
nearly the same way). Same run + ``review.seed`` -> same queue.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa

from raylabel.config import Config
from raylabel.errors import first_line
from raylabel.io.layout import RunLayout
from raylabel.io.storage import StorageOptions
from raylabel.models.card import ModelCard
from raylabel.stats.sampling import hash01


def pool_per_class(k: int, n_classes: int, factor: float) -> int:
    """Candidates kept per predicted class: ``factor`` times an equal share of ``k``."""
    if k <= 0 or n_classes <= 0:
        return 0
    return max(1, math.ceil(factor * math.ceil(k / n_classes)))


def margin_cutoffs(margin_hist: dict[str, list[int]] | None, pool_k: int) -> dict[str, float]:
    """Per class, a margin under which its ``pool_k`` smallest margins surely lie.

    From the label pass's per-class margin histograms; one bin of slack covers float32
    rounding at bin edges. A class without a histogram gets no cutoff (1.0).
    """
    out: dict[str, float] = {}
    for cls, hist in (margin_hist or {}).items():
        counts = np.asarray(hist)
        bins = len(counts)
        cum = np.cumsum(counts)
        if bins == 0 or cum[-1] <= pool_k:
            out[cls] = 1.0
            continue
        idx = int(np.searchsorted(cum, pool_k))
        out[cls] = min(1.0, (idx + 2) / bins)
    return out


def pool_mask(batch: pa.Table, u: np.ndarray, cutoffs: dict[str, float], pool_k: int) -> np.ndarray:
    """Rows of one block that can be in their class's pool: under the class cutoff and
    among the block's ``pool_k`` smallest (margin, u) of that class (exact when merged)."""
    n = batch.num_rows
    keep = np.zeros(n, dtype=bool)
    if n == 0 or pool_k <= 0:
        return keep
    margin = batch.column("margin").to_numpy(zero_copy_only=False).astype(np.float64)
    labels = np.asarray(batch.column("label").to_pylist(), dtype=object)
    for lab in np.unique(labels):
        idx = np.flatnonzero((labels == lab) & (margin <= cutoffs.get(lab, 1.0)))
        if idx.size > pool_k:
            idx = idx[np.lexsort((u[idx], margin[idx]))[:pool_k]]
        keep[idx] = True
    return keep


def class_pools(cands: pa.Table, pool_k: int, seed: int) -> pa.Table:
    """Per predicted class, the ``pool_k`` smallest margins; sorted by (label, margin, u, id)."""
    if cands.num_rows == 0 or pool_k <= 0:
        return cands.slice(0, 0)
    ids = cands.column("item_id").to_pylist()
    u = cands.column("u").to_numpy() if "u" in cands.column_names else hash01(ids, seed)
    margin = cands.column("margin").to_numpy(zero_copy_only=False).astype(np.float64)
    labels = cands.column("label").to_pylist()
    order = sorted(range(len(ids)), key=lambda i: (labels[i], margin[i], u[i], ids[i]))
    taken: dict[str, int] = {}
    keep = []
    for i in order:
        if taken.get(labels[i], 0) < pool_k:
            taken[labels[i]] = taken.get(labels[i], 0) + 1
            keep.append(i)
    out = cands.take(pa.array(keep, pa.int64()))
    if "u" not in out.column_names:
        out = out.append_column("u", pa.array(u[keep], pa.float64()))
    return out


def kcenter_select(
    labels: list[str], emb: np.ndarray | None, k: int, dedup_distance: float
) -> tuple[list[int], list[float | None]]:
    """Indices picked (in pick order) and each pick's cosine distance to the nearest earlier
    pick (None for the first). ``labels`` is ordered by uncertainty within each class.

    Round-robin over classes (sorted names) keeps the queue balanced; a class's first pick
    is its most uncertain item that is not a near-duplicate, later picks are farthest-first.
    Without embeddings it degrades to a balanced margin order with no de-duplication.
    """
    n = len(labels)
    if n == 0 or k <= 0:
        return [], []
    members: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        members.setdefault(lab, []).append(i)
    classes = sorted(members)
    if emb is not None:  # float64: exact copies must come out at distance ~0, not ~1e-7
        e64 = np.asarray(emb, dtype=np.float64)
        norms = np.linalg.norm(e64, axis=1, keepdims=True)
        unit = e64 / np.where(norms > 0, norms, 1.0)
    mind = np.full(n, np.inf)
    chosen = np.zeros(n, dtype=bool)
    started: set[str] = set()
    open_classes = list(classes)
    picks: list[int] = []
    dists: list[float | None] = []
    while len(picks) < k and open_classes:
        for cls in list(open_classes):
            if len(picks) >= k:
                break
            idx = np.asarray([i for i in members[cls] if not chosen[i]], dtype=np.int64)
            if idx.size == 0:
                open_classes.remove(cls)
                continue
            if emb is None:
                pick = int(idx[0])
            elif cls not in started:
                ok = idx[mind[idx] >= dedup_distance]
                pick = int(ok[0]) if ok.size else -1
            else:
                j = int(np.argmax(mind[idx]))  # first max = most uncertain among ties
                pick = int(idx[j]) if mind[idx[j]] >= dedup_distance else -1
            if pick < 0:  # everything left in the class duplicates an earlier pick
                open_classes.remove(cls)
                continue
            started.add(cls)
            chosen[pick] = True
            picks.append(pick)
            dists.append(None if not np.isfinite(mind[pick]) else float(mind[pick]))
            if emb is not None:
                d = np.clip(1.0 - unit @ unit[pick], 0.0, 2.0)
                mind = np.minimum(mind, d)
    return picks, dists


def median_distance(emb: np.ndarray, max_rows: float) -> float:
    """Median pairwise cosine distance of the pool (its first ``max_rows`` rows at most)."""
    e = np.asarray(emb[: max(2, int(max_rows))], dtype=np.float64)
    if len(e) < 2:
        return 0.0
    unit = e / np.where((n := np.linalg.norm(e, axis=1, keepdims=True)) > 0, n, 1.0)
    d = np.clip(1.0 - unit @ unit.T, 0.0, 2.0)
    return float(np.median(d[np.triu_indices(len(e), 1)]))


def _embed_pool(
    rows: pa.Table,
    loader: Any,
    card: ModelCard,
    opts: StorageOptions,
    model_dir: str,
    max_pixels: int,
    max_bytes: int,
    batch_size: int,
) -> tuple[list[str], np.ndarray]:
    """Inside one Ray task: decode the pool's items and embed those that still decode."""
    from raylabel.inputs.prepare import decoded_features, for_card
    from raylabel.models.embed import embeddings_for
    from raylabel.models.registry import family_of

    decoded = for_card(card, model_dir, opts, max_pixels, max_bytes)(rows)
    data_col = family_of(card).feature
    ok, data = decoded_features(decoded, data_col)
    ids = [i for i, good in zip(decoded.column("item_id").to_pylist(), ok, strict=True) if good]
    if not ok.any():
        return [], np.zeros((0, 0), np.float32)
    predictor = loader()
    emb = embeddings_for(predictor, {data_col: data}, batch_size)
    return ids, emb


def pool_payloads(pool: pa.Table, plan: Any, opts: StorageOptions) -> pa.Table:
    """item_id, uri and any inline payload of the pool's items (small: the pool only)."""
    import pyarrow.compute as pc

    base = pool.select(["item_id", "uri"])
    if plan is None:
        return base
    wanted = pa.array(base.column("item_id").to_pylist(), pa.string())
    if plan.kind == "parquet":
        from raylabel.inputs.packed import read_packed_rows

        layout = (plan.uri, plan.payload_column, plan.inline_column)
        return read_packed_rows(
            wanted, plan.identities, plan.row_groups, plan.duplicate_rows, layout, opts
        )
    listing = plan.listing
    if listing is not None and plan.inline_column in listing.column_names:
        return listing.filter(pc.is_in(listing.column("item_id"), value_set=wanted))
    return base


def rows_of(rows: pa.Table, table: pa.Table) -> pa.Table:
    """The rows (read once for several lists) that belong to ``table``'s items."""
    import pyarrow.compute as pc

    wanted = pa.array(table.column("item_id").to_pylist(), pa.string())
    return rows.filter(pc.is_in(rows.column("item_id"), value_set=wanted))


def pool_embeddings(
    cfg: Config,
    run: RunLayout,
    card: ModelCard,
    pool: pa.Table,
    plan: Any,
    opts: StorageOptions,
    rows: pa.Table | None = None,
) -> tuple[np.ndarray | None, str]:
    """(embeddings aligned with ``pool`` or None, status); ``rows`` (the pool's payloads,
    already read with the sample's) saves a read of the drop. On GPU one Ray task embeds
    them on a GPU; on CPU the driver does, since it already has torch loaded and a task
    would start a cold worker importing torch (~1.5 s) for a few hundred items."""
    import ray

    from raylabel.io import layout
    from raylabel.models.loader import ModelLoader

    rows = pool_payloads(pool, plan, opts) if rows is None else rows_of(rows, pool)
    root, version = cfg.output.root, card.model_version
    model_dir = layout.model_uri(root, version)
    args = (card, opts, model_dir, cfg.infer.max_pixels, cfg.infer.max_item_bytes)
    if cfg.infer.use_gpu:
        loader = ModelLoader(root, version, opts, use_gpu=True, threads=1)
        embed = ray.remote(num_cpus=0.5, num_gpus=1)(_embed_pool)
        ids, emb = ray.get(embed.remote(rows, loader, *args, cfg.infer.batch_size))
    else:
        import torch

        # the loader sets torch's thread count: give it the driver's own, left as it was
        loader = ModelLoader(root, version, opts, threads=torch.get_num_threads())
        ids, emb = _embed_pool(rows, loader, *args, cfg.infer.batch_size)
    pool_ids = pool.column("item_id").to_pylist()
    if not ids:
        return None, "unavailable: no pool item could be read again"
    where = {i: n for n, i in enumerate(ids)}
    missing = [i for i in pool_ids if i not in where]
    if missing:
        return None, f"unavailable: {len(missing)} pool item(s) could not be read again"
    return emb[[where[i] for i in pool_ids]], "ok"


def build_queue(
    cfg: Config,
    run: RunLayout,
    card: ModelCard,
    cands: pa.Table,
    plan: Any,
    opts: StorageOptions,
    rows: pa.Table | None = None,
) -> tuple[pa.Table, dict[str, Any]]:
    """The uncertain queue (rows in pick order, with ``queue_rank`` and ``kcenter_distance``)
    and a small description for summary.json; ``rows`` as in `pool_embeddings`."""
    r = cfg.review
    n_cls = max(1, len(card.classes))
    pool_k = pool_per_class(r.uncertain_size, n_cls, r.uncertain_pool_factor)
    pool = class_pools(cands, pool_k, r.seed)
    info: dict[str, Any] = {
        "strategy": "margin_kcenter",
        "pool_per_class": pool_k,
        "pool": pool.num_rows,
        "dedup_fraction": r.dedup_fraction,
    }
    if pool.num_rows == 0:
        info["embedding"] = "none (empty pool)"
        return pool, info
    try:
        emb, status = pool_embeddings(cfg, run, card, pool, plan, opts, rows)
    except Exception as exc:  # the queue must never fail a run: fall back to margin order
        msg = first_line(exc)
        emb, status = None, f"unavailable: {type(exc).__name__}: {msg}"[:300]
    info["embedding"] = status
    if emb is not None:
        info["embedding_dim"] = int(emb.shape[1])
    labels = pool.column("label").to_pylist()
    threshold = 0.0
    if emb is not None:
        scale = median_distance(emb, r.uncertain_pool_factor * r.uncertain_size)
        threshold = r.dedup_fraction * scale
        info["median_distance"] = scale
        info["dedup_distance"] = threshold
    picks, dists = kcenter_select(labels, emb, r.uncertain_size, threshold)
    queue = pool.take(pa.array(picks, pa.int64()))
    queue = queue.append_column("queue_rank", pa.array(range(len(picks)), pa.int32()))
    queue = queue.append_column("kcenter_distance", pa.array(dists, pa.float32()))
    per_class: dict[str, int] = {}
    for lab in queue.column("label").to_pylist():
        per_class[lab] = per_class.get(lab, 0) + 1
    info["per_class"] = dict(sorted(per_class.items()))
    return queue, info
