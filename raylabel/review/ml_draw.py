"""The review sample and queue of a multilabel run: same streaming draw, multilabel strata.

Strata are accepted/review x undecided classes (0, 1, 2+) x margin bin
(:mod:`raylabel.stats.multilabel_sampling`); within each, the items with the smallest
hash(item_id, review.seed), exactly as for multiclass runs, so the sample carries the same
design columns (``stratum``, ``stratum_population``, ``inclusion_prob``, ``weight``) and the
stratified estimates apply. The queue is the ``review.uncertain_size`` items outside the
sample with the most undecided classes, then the smallest margin (no embedding pass: a
multilabel item has no single class to balance the queue over).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raylabel.config import Config
from raylabel.io import storage
from raylabel.io.layout import RunLayout
from raylabel.io.schema import MULTILABEL_SCHEMA
from raylabel.io.storage import StorageOptions
from raylabel.models.card import ModelCard
from raylabel.review.draw import SCAN_CPUS, publish_review, u_bounds
from raylabel.stats import multilabel_sampling as mls
from raylabel.stats.sampling import SampleState, allocate, draw_sample, hash01

ML_REVIEW_COLUMNS = [
    "item_id",
    "uri",
    "labels",
    "undecided_labels",
    "scores",
    "raw_scores",
    "margin",
    "accepted",
    "model_version",
    "run_id",
    "drop",
]
GROUP_COL = "ml_group"
PRIORITY_COL = "queue_priority"


def _block(table: pa.Table, bounds: dict[str, float] | None, edges: list[float], seed: int,
           queue_k: int) -> tuple[pa.Table, dict[str, int]]:  # fmt: skip
    """One block's candidates (u under their stratum's bound, or among its ``queue_k`` lowest
    queue priorities) with ``u``, group and priority; and its strata counts."""
    counts = mls.strata_counts(table, edges)
    if table.num_rows == 0 or bounds is None:
        return table.slice(0, 0), counts
    u = hash01(table.column("item_id").to_pylist(), seed)
    keys = mls.row_strata(table, edges)
    bound = np.array([bounds.get(k, -1.0) for k in keys])
    keep = u <= bound
    prio = mls.queue_priority(table)
    if queue_k > 0:
        lowest = np.lexsort((u, prio))[:queue_k]
        keep[lowest] = True
    out = mls.with_group(table, GROUP_COL)
    out = out.append_column("u", pa.array(u, pa.float64()))
    out = out.append_column(PRIORITY_COL, pa.array(prio, pa.float64()))
    return out.filter(pa.array(keep)), counts


def _files_block(uris: list[str], opts: StorageOptions, kwargs: dict[str, Any]
                 ) -> tuple[pa.Table, dict[str, int]]:  # fmt: skip
    """Inside one Ray task: the candidates and strata counts of some labels/ files."""
    parts, counts = [], {}
    for uri in uris:
        fs, path = storage.resolve(uri, opts)
        table = pq.read_table(path, filesystem=fs, columns=ML_REVIEW_COLUMNS)
        part, c = _block(table, **kwargs)
        parts.append(part)
        for k, v in c.items():
            counts[k] = counts.get(k, 0) + v
    parts = [p for p in parts if p.num_rows]
    return (pa.concat_tables(parts) if parts else pa.table({})), counts


def scan(run: RunLayout, opts: StorageOptions, kwargs: dict[str, Any]
         ) -> tuple[pa.Table, dict[str, int]]:  # fmt: skip
    """(candidates, strata populations) of every labels/ file: plain Ray tasks, at most one
    per CPU, as the multiclass draw does; ``bounds=None`` only counts."""
    import ray

    from raylabel.io.listing import list_files

    if not storage.exists(run.labels_dir, opts):
        return pa.table({}), {}
    uris = [f.uri for f in list_files(run.labels_dir, opts, extensions=[".parquet"])]
    if not uris:
        return pa.table({}), {}
    n_tasks = max(1, min(len(uris), int(ray.cluster_resources().get("CPU", 1))))
    task = ray.remote(num_cpus=SCAN_CPUS)(_files_block)
    results = ray.get([task.remote(uris[i::n_tasks], opts, kwargs) for i in range(n_tasks)])
    counts: dict[str, int] = {}
    for _, c in results:
        for k, v in c.items():
            counts[k] = counts.get(k, 0) + v
    parts = [p for p, _ in results if p.num_rows]
    return (pa.concat_tables(parts) if parts else pa.table({})), counts


def typed(table: pa.Table) -> pa.Table:
    """Columns of the labeled-row schema back to its types (rows passed through Python
    lists come back as float64 lists, or null lists when every list was empty)."""
    for f in MULTILABEL_SCHEMA:
        if f.name in table.column_names:
            i = table.schema.get_field_index(f.name)
            table = table.set_column(i, f.name, table.column(f.name).cast(f.type))
    return table


def select_sample(cands: pa.Table, populations: dict[str, int], allocation: dict[str, int],
                  edges: list[float], seed: int) -> pa.Table | None:  # fmt: skip
    """The sample from the candidates; None when a stratum came back short (re-scan)."""
    if not allocation or not any(allocation.values()):
        return pa.table({})
    state = SampleState(cap=max(max(allocation.values()), 1))
    if cands.num_rows:
        state.add(cands, edges, seed, label_col=GROUP_COL, conf_col="margin",
                  columns=ML_REVIEW_COLUMNS)  # fmt: skip
    for k, n in allocation.items():
        if len(state.candidates.get(k, [])) < min(n, populations.get(k, 0)):
            return None
    state.populations = dict(populations)
    return typed(draw_sample(state, allocation))


def queue_from(cands: pa.Table, sample: pa.Table, k: int) -> pa.Table:
    """The k candidates outside the sample with the smallest (priority, u, item_id)."""
    if k <= 0 or not cands.num_rows:
        return pa.table({})
    drawn = set(sample.column("item_id").to_pylist()) if sample.num_rows else set()
    ids = cands.column("item_id").to_pylist()
    prio = cands.column(PRIORITY_COL).to_numpy()
    u = cands.column("u").to_numpy()
    order = sorted(
        (i for i in range(len(ids)) if ids[i] not in drawn),
        key=lambda i: (prio[i], u[i], ids[i]),
    )[:k]
    out = cands.take(pa.array(order, pa.int64())).select([*ML_REVIEW_COLUMNS, "u"])
    return typed(out)


def allocation_for(cfg: Config, populations: dict[str, int]) -> dict[str, int]:
    """Sample size per stratum (review.size, review.allocation, review.min_per_stratum)."""
    r = cfg.review
    if not populations or not r.size:
        return {}
    weights = mls.error_weights(populations) if r.allocation == "error_weighted" else None
    return allocate(populations, r.size, r.allocation, r.min_per_stratum, weights)


def draw_multilabel_review(
    cfg: Config,
    run: RunLayout,
    card: ModelCard,
    stats: dict[str, Any] | None,
    opts: StorageOptions,
    plan: Any = None,
    review_dir: str | None = None,
) -> dict[str, Any]:
    """Stratified sample + uncertain queue of a multilabel run, written like the multiclass
    review files (`review_dir`, default the run's review/). ``stats["strata"]`` are the
    populations the label pass counted with ``multilabel_sampling.strata_counts`` over
    ``margin_edges(review.bin_edges)``; without them a counting scan comes first."""
    r = cfg.review
    edges = mls.margin_edges(r.bin_edges)
    populations = {k: int(v) for k, v in ((stats or {}).get("strata") or {}).items()}
    if not populations:
        populations = scan(run, opts, {"bounds": None, "edges": edges, "seed": r.seed,
                                       "queue_k": 0})[1]  # fmt: skip
    allocation = allocation_for(cfg, populations)
    bounds = u_bounds(populations, allocation)
    # each block keeps enough queue candidates for the queue even if all were sampled
    queue_k = r.uncertain_size + sum(allocation.values()) if r.uncertain_size > 0 else 0
    kwargs = {"bounds": bounds, "edges": edges, "seed": r.seed, "queue_k": queue_k}
    cands = scan(run, opts, kwargs)[0] if populations else pa.table({})
    sample = select_sample(cands, populations, allocation, edges, r.seed)
    if sample is None:  # astronomically rare: re-read with no bound
        again = scan(run, opts, {**kwargs, "bounds": dict.fromkeys(bounds, 1.0)})[0]
        sample = select_sample(again, populations, allocation, edges, r.seed)
        if sample is None:
            raise RuntimeError(f"run {run.run_id}: labels/ changed while drawing its sample")
    uncertain = queue_from(cands, sample, r.uncertain_size)
    files = publish_review(cfg, run, card, (sample, uncertain), plan, opts, review_dir)
    return {
        "size": sample.num_rows,
        "requested": r.size,
        "strata": len([k for k, v in allocation.items() if v > 0]),
        "strata_kind": "accepted x undecided classes x margin bin",
        "margin_edges": edges,
        "allocation_method": r.allocation,
        "allocation": allocation,
        "seed": r.seed,
        "uncertain": uncertain.num_rows,
        "uncertain_queue": {"strategy": "multilabel_undecided_margin",
                            "order": "most undecided classes, then smallest margin"},
        "files": files,
    }  # fmt: skip
