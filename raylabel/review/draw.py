"""The review sample of a run: stratified, deterministic, drawn in one streaming pass.

Strata populations come from the label pass. The sample in stratum h is the n_h items
with the smallest u = hash(item_id, review.seed). Since u is uniform, the n_h-th smallest
of N_h values is below a Beta quantile with overwhelming probability, so the pass ships
only rows under that bound to the driver (about n_h per stratum), never the drop. If a
stratum ever comes back short, it is re-read with no bound: exact either way.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raylabel.config import Config
from raylabel.io import storage
from raylabel.io.layout import RunLayout
from raylabel.io.storage import StorageOptions
from raylabel.models.card import ModelCard
from raylabel.review import active, labelstudio
from raylabel.review.media import item_payloads, payload_table, with_media
from raylabel.stats.sampling import (
    LowestK,
    SampleState,
    allocate,
    confidence_bins,
    draw_sample,
    hash01,
    neyman_error_weights,
    stratum_key,
)

REVIEW_COLUMNS = [
    "item_id",
    "uri",
    "label",
    "confidence",
    "raw_confidence",
    "margin",
    "accepted",
    "threshold",
    "model_version",
    "run_id",
    "drop",
]
BOUND_TAIL = 1e-9
SCAN_CPUS = 0.25  # a scan task reads a few columns; it must not wait for a whole CPU
FILES_PER_SCAN = 8  # labels/ part files per scan task: a small drop (8 parts) scans in one


def u_bounds(populations: dict[str, int], allocation: dict[str, int]) -> dict[str, float]:
    """Per stratum, a u below which the n_h smallest lie with probability 1 - 1e-9."""
    from scipy.stats import beta

    out = {}
    for key, n_h in allocation.items():
        big_n = populations.get(key, 0)
        if n_h <= 0:
            out[key] = -1.0
        elif n_h >= big_n:
            out[key] = 1.0
        else:
            out[key] = float(beta.ppf(1 - BOUND_TAIL, n_h, big_n - n_h + 1))
    return out


def _candidates(
    batch: pa.Table,
    bounds: dict[str, float],
    edges: list[float],
    seed: int,
    conf_cut: float,
    pool: dict[str, Any] | None = None,
) -> pa.Table:
    """Rows that may be in the sample (u under their stratum's bound) or the uncertain list
    (least-confident cutoff, or the active queue's per-class margin pool)."""
    if batch.num_rows == 0:
        return batch.append_column("u", pa.array([], pa.float64()))
    ids = batch.column("item_id").to_pylist()
    u = hash01(ids, seed)
    conf = batch.column("confidence").to_numpy(zero_copy_only=False)
    bins = confidence_bins(conf, edges)
    labels = np.asarray(batch.column("label").to_pylist(), dtype=object)
    bound = np.full(len(ids), -1.0)
    for lab in np.unique(labels):  # one key per stratum, not per row
        rows = labels == lab
        per_bin = np.array(
            [bounds.get(stratum_key(lab, b, edges), -1.0) for b in range(len(edges) - 1)]
        )
        bound[rows] = per_bin[bins[rows]]
    keep = (u <= bound) | (conf <= conf_cut)
    if pool:
        keep |= active.pool_mask(batch, u, pool["cutoffs"], pool["k"])
    out = batch.append_column("u", pa.array(u, pa.float64()))
    return out.filter(pa.array(keep))


def _scan(run: RunLayout, opts: StorageOptions, fn_kwargs: dict[str, Any]) -> pa.Table:
    """The review candidates of every labels/ file: plain Ray tasks, at most one per CPU, each
    reading a few columns of its files and returning only their candidates. A Ray Data plan
    and executor, or a task per file, cost more than the scan itself on a small drop (every
    task beyond the idle workers starts a new worker process)."""
    import ray

    from raylabel.io.listing import list_files

    if not storage.exists(run.labels_dir, opts):
        return pa.table({c: pa.array([], pa.string()) for c in REVIEW_COLUMNS})
    uris = [f.uri for f in list_files(run.labels_dir, opts, extensions=[".parquet"])]
    # a task beyond the first can be a cold worker process (about a CPU-second of imports, where
    # reading 8 part files takes 0.1 s): one task per FILES_PER_SCAN files, one per CPU at most
    n_tasks = max(
        1, min(-(-len(uris) // FILES_PER_SCAN), int(ray.cluster_resources().get("CPU", 1)))
    )
    task = ray.remote(num_cpus=SCAN_CPUS)(_files_candidates)
    parts = ray.get([task.remote(uris[i::n_tasks], opts, fn_kwargs) for i in range(n_tasks)])
    parts = [p for p in parts if p.num_rows]
    return pa.concat_tables(parts) if parts else pa.table({})


def _files_candidates(uris: list[str], opts: StorageOptions, kwargs: dict[str, Any]) -> pa.Table:
    """Inside one Ray task: the candidate rows of some labels/ files."""
    parts = []
    for uri in uris:
        fs, path = storage.resolve(uri, opts)
        parts.append(
            _candidates(pq.read_table(path, filesystem=fs, columns=REVIEW_COLUMNS), **kwargs)
        )
    parts = [p for p in parts if p.num_rows]
    return pa.concat_tables(parts) if parts else pa.table({})


def uncertain_cutoff(hist: dict[str, list[int]], k: int) -> float:
    """Smallest histogram edge under which at least k items lie (from the label pass)."""
    if k <= 0 or not hist:
        return -1.0
    total = np.sum([np.asarray(v) for v in hist.values()], axis=0)
    cum = np.cumsum(total)
    bins = len(total)
    idx = int(np.searchsorted(cum, k))
    return min(1.0, (idx + 1) / bins)


def draw_review(
    cfg: Config,
    run: RunLayout,
    card: ModelCard,
    stats: dict[str, Any],
    opts: StorageOptions,
    plan: Any = None,
    review_dir: str | None = None,
) -> dict[str, Any]:
    """Stratified sample + uncertain list in one scan; ``plan`` (the drop's SourcePlan, when
    known) lets the active queue re-read inline payloads of its small candidate pool.
    Files go to `review_dir` (default: the run's review/; a redraw writes elsewhere).
    Multiclass runs only: `by_task.draw_review` picks the draw of a run's task."""
    r = cfg.review
    populations = {k: int(v) for k, v in stats["strata"].items()}
    weights = neyman_error_weights(populations) if r.allocation == "error_weighted" else None
    allocation = (
        allocate(populations, r.size, r.allocation, r.min_per_stratum, weights)
        if populations and r.size
        else {}
    )
    bounds = u_bounds(populations, allocation)
    kcenter = r.uncertain_strategy == "margin_kcenter"
    cut = -1.0 if kcenter else uncertain_cutoff(stats["hist"], r.uncertain_size)
    kwargs = {"bounds": bounds, "edges": list(r.bin_edges), "seed": r.seed, "conf_cut": cut}
    if kcenter and r.uncertain_size > 0:
        pool_k = active.pool_per_class(r.uncertain_size, len(card.classes), r.uncertain_pool_factor)
        cutoffs = active.margin_cutoffs(stats.get("margin_hist"), pool_k)
        kwargs["pool"] = {"cutoffs": cutoffs, "k": pool_k}
    cands = _scan(run, opts, kwargs) if populations else pa.table({})
    sample = _select(cands, populations, allocation, r, run, opts)
    # the queue is drawn from what the sample left: an item goes to reviewers once, as a
    # sample item (so it counts in the estimates)
    queue_cands = _without(cands, sample)
    uncertain, queue_info, rows = _queue(cfg, run, card, sample, queue_cands, plan, opts)
    files = publish_review(cfg, run, card, (sample, uncertain), plan, opts, review_dir, rows)
    return {
        "size": sample.num_rows,
        "requested": r.size,
        "strata": len([k for k, v in allocation.items() if v > 0]),
        "allocation_method": r.allocation,
        "allocation": allocation,
        "seed": r.seed,
        "uncertain": uncertain.num_rows,
        "uncertain_queue": queue_info,
        "files": files,
    }


def publish_review(
    cfg: Config,
    run: RunLayout,
    card: ModelCard,
    tables: tuple[pa.Table, pa.Table],
    plan: Any,
    opts: StorageOptions,
    review_dir: str | None = None,
    rows: pa.Table | None = None,
) -> dict[str, str]:
    """Write the (sample, uncertain queue) review files with what reviewers see
    (`review.media`) and the reviewed items' bytes; `rows` are drop rows already read."""
    r = cfg.review
    sample, uncertain = tables
    reviewed = [t.select(["item_id", "uri"]) for t in tables if t.num_rows]
    payloads = (
        item_payloads(pa.concat_tables(reviewed), plan, opts, cfg.infer.max_item_bytes, rows)
        if reviewed
        else {}
    )

    def media(table: pa.Table) -> tuple[pa.Table, str | None]:
        return with_media(
            table, card, plan, opts, r.media, r.media_px, cfg.infer.max_item_bytes, payloads,
            r.presign_ttl_s,
        )  # fmt: skip

    return write_review_files(
        run, card, sample, uncertain, opts, review_dir, media, payloads,
        separator=cfg.seed.label_separator,
    )  # fmt: skip


def _queue(
    cfg: Config,
    run: RunLayout,
    card: ModelCard,
    sample: pa.Table,
    queue_cands: pa.Table,
    plan: Any,
    opts: StorageOptions,
) -> tuple[pa.Table, dict[str, Any], pa.Table | None]:
    """(uncertain queue, its description, the drop rows read for it). The active queue's pool
    and the sample are read from the drop together, once: the same rows serve the pool's
    embeddings and the review files' payloads (at 1M items every read touches every row
    group)."""
    r = cfg.review
    if r.uncertain_strategy != "margin_kcenter":
        uncertain = _uncertain(queue_cands, r.uncertain_size, r.seed)
        return uncertain, {"strategy": "least_confident"}, None
    n_cls = max(1, len(card.classes))
    pool_k = active.pool_per_class(r.uncertain_size, n_cls, r.uncertain_pool_factor)
    pool = active.class_pools(queue_cands, pool_k, r.seed)
    wanted = [t.select(["item_id", "uri"]) for t in (sample, pool) if t.num_rows]
    rows = active.pool_payloads(pa.concat_tables(wanted), plan, opts) if wanted else None
    uncertain, info = active.build_queue(cfg, run, card, queue_cands, plan, opts, rows)
    return uncertain, info, rows


def _select(
    cands: pa.Table,
    populations: dict[str, int],
    allocation: dict[str, int],
    r: Any,
    run: RunLayout,
    opts: StorageOptions,
) -> pa.Table:
    edges = list(r.bin_edges)
    cap = max(allocation.values(), default=0)
    state = SampleState(cap=max(cap, 1))
    if cands.num_rows:
        state.add(cands.drop_columns(["u"]), edges, r.seed, columns=REVIEW_COLUMNS)
    short = [
        k
        for k, n in allocation.items()
        if len(state.candidates.get(k, [])) < min(n, populations[k])
    ]
    if short:  # astronomically rare: re-read with no bound for those strata
        bounds = u_bounds(populations, allocation)
        bounds.update({k: 1.0 for k in short})
        again = _scan(
            run, opts, {"bounds": bounds, "edges": edges, "seed": r.seed, "conf_cut": -1.0}
        )
        state = SampleState(cap=max(cap, 1))
        state.add(again.drop_columns(["u"]), edges, r.seed, columns=REVIEW_COLUMNS)
    state.populations = dict(populations)
    return draw_sample(state, allocation) if allocation else pa.table({})


def _without(cands: pa.Table, sample: pa.Table) -> pa.Table:
    """The candidates that are not in the sample."""
    if "item_id" not in cands.column_names or "item_id" not in sample.column_names:
        return cands
    drawn = set(sample.column("item_id").to_pylist())
    ids = cands.column("item_id").to_pylist()
    return cands.filter(pa.array([i not in drawn for i in ids], pa.bool_()))


def _uncertain(cands: pa.Table, k: int, seed: int) -> pa.Table:
    """The k least-confident items (the candidates hold every item under the histogram
    cutoff, which is computed on the same confidence)."""
    if not cands.num_rows or k <= 0:
        return pa.table({})
    low = LowestK(k=k, column="confidence", seed=seed)
    low.add(cands, columns=[*REVIEW_COLUMNS, "u"])
    return low.to_table()


def write_review_files(
    run: RunLayout,
    card: ModelCard,
    sample: pa.Table,
    uncertain: pa.Table,
    opts: StorageOptions,
    review_dir: str | None = None,
    media: Callable[[pa.Table], tuple[pa.Table, str | None]] | None = None,
    payloads: dict[str, bytes] | None = None,
    separator: str = "|",
) -> dict[str, str]:
    """Publish the review sample and the uncertain queue in each form reviewers use (Parquet, CSV,
    Label Studio tasks and config); returns the uris for the summary. `media` gives the
    Label Studio tasks what the reviewer sees (`review.media`); the queue's tasks carry no
    prediction, so reviewers are not anchored by the model's guess. `payloads` (the items'
    bytes) go to payloads.parquet, from which `evaluate` makes self-contained feedback.
    A multilabel card's files offer every class as a multiple choice, and the CSV writes
    each label list `separator`-joined."""
    files: dict[str, str] = {}
    multilabel = card.task == "multilabel"

    def put(name: str, data: bytes) -> None:
        uri = storage.join(review_dir or run.review_dir, name)
        storage.write_bytes(uri, data, opts)
        files[name] = uri

    for table, stem, tasks_file, predicted in (
        (sample, "sample", "labelstudio.json", True),
        (uncertain, "uncertain", "uncertain_labelstudio.json", False),
    ):
        put(f"{stem}.parquet", _parquet_bytes(table))
        put(f"{stem}.csv", _csv_bytes(_joined_lists(table, separator) if multilabel else table))
        tasks = _tasks(table, card, predicted, media) if table.num_rows else []
        put(tasks_file, json.dumps(tasks, indent=1, default=str).encode())
    if payloads is not None:  # the reviewed items' bytes: their reviews train without the drop
        put("payloads.parquet", _parquet_bytes(payload_table(payloads)))
    put(
        "labelstudio_config.xml",
        labelstudio.labeling_config_xml(card.classes, card.modality, multiple=multilabel).encode(),
    )
    return files


def _tasks(
    table: pa.Table,
    card: ModelCard,
    predicted: bool,
    media: Callable[[pa.Table], tuple[pa.Table, str | None]] | None,
) -> list[dict]:
    """Label Studio tasks of one review file, showing what `media` says."""
    shown, payload = media(table) if media is not None else (table, None)
    data_key = card.modality  # the Label Studio object: "image" or "text"
    return labelstudio.tasks_from_sample(
        shown,
        card.model_version,
        card.classes,
        with_predictions=predicted,
        data_key=data_key,
        to_name=data_key,
        payload_col=payload,
        labels_col="labels" if card.task == "multilabel" else None,
    )


def _joined_lists(table: pa.Table, separator: str) -> pa.Table:
    """The table with its list<string> columns as `separator`-joined text (a CSV cell)."""
    for i, f in enumerate(table.schema):
        if pa.types.is_list(f.type) and pa.types.is_string(f.type.value_type):
            text = [None if v is None else separator.join(v) for v in table.column(i).to_pylist()]
            table = table.set_column(i, f.name, pa.array(text, pa.string()))
    return table


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


#: a spreadsheet runs a cell starting with one of these as a formula (CSV injection)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A text cell a spreadsheet would run as a formula gets a leading "'" (item ids, uris
    and labels come from the drop: a bucket is not a trusted source); numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv_bytes(table: pa.Table) -> bytes:
    out = io.StringIO()
    cols = [c for c in table.column_names if not pa.types.is_nested(table.schema.field(c).type)]
    writer = csv.writer(out)
    writer.writerow([csv_cell(c) for c in cols])
    for row in table.select(cols).to_pylist():
        writer.writerow([csv_cell(row[c]) for c in cols])
    return out.getvalue().encode()
