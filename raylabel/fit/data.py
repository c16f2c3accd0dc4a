"""The seed as decoded Ray datasets for training and for fold models: split, select, decode.

The seed listing (ids and labels only) is split on the driver so the validation split is
exactly stratified and reproducible; payloads are decoded inside Ray Data tasks.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pyarrow as pa

from raylabel.config import Config
from raylabel.inputs import sources
from raylabel.io import storage

SEED_BLOCK_ROWS = 256
#: listing column set only on reviewed-feedback rows: where to read the item (its kept copy)
FEEDBACK_URI = "feedback_uri"
DECODE_CPUS = 0.25


def stratified_split(
    item_ids: list[str], labels: list[str], val_fraction: float, seed: int
) -> np.ndarray:
    """Boolean mask of validation items: in each class the ceil(f*n) ids with the lowest hash."""
    ids = np.asarray(item_ids, dtype=object)
    labs = np.asarray(labels, dtype=object)
    keys = np.array([_hash64(f"{seed}\x1f{i}") for i in item_ids], dtype=np.uint64)
    is_val = np.zeros(len(ids), dtype=bool)
    for cls in sorted(set(labels)):
        idx = np.flatnonzero(labs == cls)
        if len(idx) < 2:
            continue  # a one-item class can only train
        k = min(len(idx) - 1, max(1, int(np.ceil(val_fraction * len(idx)))))
        order = idx[np.argsort(keys[idx], kind="stable")]
        is_val[order[:k]] = True
    return is_val


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def seed_rows_dataset(
    cfg: Config,
    plan: sources.SourcePlan,
    opts: storage.StorageOptions,
    rows: np.ndarray,
    index: dict[str, int],
    decode: Any,
    extra: pa.Table | None = None,
    rng: np.random.Generator | None = None,
) -> Any:
    """The seed listing's `rows` (in that order) as a decoded Ray dataset, read from a packed
    Parquet seed or fetched by URI; `extra` pseudo-labeled rows join a listing seed. Shared
    by training (train/val split) and the seed audit (one dataset per fold)."""
    import ray.data

    listing = plan.listing
    assert listing is not None
    rows, fb_rows = _split_feedback(listing, rows)
    if plan.kind == "parquet":
        fs, _ = storage.resolve(plan.uri, opts)
        paths = [storage.resolve(f, opts)[1] for f in plan.parquet_files or []]
        keep = set(listing.column("item_id").take(pa.array(rows)).to_pylist())
        ds = ray.data.read_parquet(paths, filesystem=fs).select_columns(
            ["item_id", plan.payload_column, cfg.seed.label_column]
        )
        ds = ds.map_batches(
            _select_parquet_rows,
            fn_kwargs={
                "keep": keep,
                "index": index,
                "payload": plan.payload_column,
                "label_column": cfg.seed.label_column,
                "inline": plan.inline_column,
            },
            batch_format="pyarrow",
        )
    else:
        label_index = pa.array([index[v] for v in listing.column("label").to_pylist()], pa.int32())
        keep_cols = ["item_id", "uri"] + (["text"] if "text" in listing.column_names else [])
        table = listing.select(keep_cols).append_column("label_index", label_index)
        table = table.take(pa.array(rows))
        if extra is not None and extra.num_rows:  # pseudo-labels: training split only
            assert rng is not None
            table = training_rows(table, extra, index, cfg.train.pseudo_labels.weight, rng)
        ds = sources.listing_dataset(table, SEED_BLOCK_ROWS)
    ds = ds.map_batches(decode, batch_format="pyarrow", batch_size=128, num_cpus=DECODE_CPUS)
    if not len(fb_rows):
        return ds
    fb = _feedback_rows(listing, fb_rows, index, weighted=extra is not None and extra.num_rows > 0)
    fb_ds = sources.listing_dataset(fb, SEED_BLOCK_ROWS).map_batches(
        decode, batch_format="pyarrow", batch_size=128, num_cpus=DECODE_CPUS
    )
    return ds.union(fb_ds)


def _split_feedback(listing: pa.Table, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(seed rows, reviewed-feedback rows) of `rows`: feedback is read from its kept copy,
    not the way the seed's kind reads its items."""
    if FEEDBACK_URI not in listing.column_names:
        return rows, rows[:0]
    import pyarrow.compute as pc

    is_fb = pc.is_valid(listing.column(FEEDBACK_URI)).to_numpy(zero_copy_only=False)
    return rows[~is_fb[rows]], rows[is_fb[rows]]


def _feedback_rows(
    listing: pa.Table, rows: np.ndarray, index: dict[str, int], weighted: bool
) -> pa.Table:
    """Feedback rows as the decoder reads them: fetched by uri (their kept copy)."""
    take = pa.array(rows)
    labels = listing.column("label").take(take).to_pylist()
    table = pa.table(
        {
            "item_id": listing.column("item_id").take(take).cast(pa.string()),
            "uri": listing.column(FEEDBACK_URI).take(take).cast(pa.string()),
            "label_index": pa.array([index[v] for v in labels], pa.int32()),
        }
    )
    if weighted:  # beside pseudo-labels every row carries a loss weight; reviews weigh 1
        table = table.append_column("weight", pa.array([1.0] * len(rows), pa.float32()))
    return table


def preprocessor(
    cfg: Config, opts: storage.StorageOptions, model_uri: str, tokenizer_json: str | None = None
) -> Any:
    """The seed's CPU preprocessing callable (decode+resize, or tokenize)."""
    from raylabel.inputs.prepare import for_training

    return for_training(cfg, opts, model_uri, tokenizer_json)


def _select_parquet_rows(
    batch: pa.Table,
    keep: set[str],
    index: dict[str, int],
    payload: str,
    label_column: str,
    inline: str = "bytes",
) -> pa.Table:
    ids = batch.column("item_id").cast(pa.string()).to_pylist()
    mask = pa.array([i in keep for i in ids])
    t = batch.filter(mask)
    return pa.table(
        {
            "item_id": t.column("item_id").cast(pa.string()),
            "uri": t.column("item_id").cast(pa.string()),
            inline: t.column(payload),
            "label_index": pa.array(
                [index[str(v)] for v in t.column(label_column).to_pylist()], pa.int32()
            ),
        }
    )


def keep_decoded(batch: pa.Table, feature: str = "pixels") -> pa.Table:
    """Drop the rows whose decode failed (their features are zero placeholders) and keep only the
    columns the training loop reads, so no unreadable item is ever trained on."""
    import pyarrow.compute as pc

    ok = batch.filter(pc.is_null(batch.column("error")))
    weight = ["weight"] if "weight" in ok.column_names else []
    return ok.select([feature, "label_index", *weight])


def training_rows(
    table: pa.Table, chosen: pa.Table, index: dict[str, int], weight: float, rng: Any
) -> pa.Table:
    """Seed rows (weight 1) and pseudo-label rows (loss weight `weight`), shuffled together."""
    n = chosen.num_rows
    seed_part = table.append_column("weight", pa.array([1.0] * table.num_rows, pa.float32()))
    extra = pa.table(
        {
            "item_id": chosen.column("item_id"),
            "uri": chosen.column("uri"),
            "label_index": pa.array(
                [index[v] for v in chosen.column("label").to_pylist()], pa.int32()
            ),
            "weight": pa.array([weight] * n, pa.float32()),
        }
    )
    both = pa.concat_tables([seed_part.select(extra.column_names), extra])
    return both.take(pa.array(rng.permutation(both.num_rows)))
