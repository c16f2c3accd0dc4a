"""Packed Parquet inputs (ids and payloads in the files themselves): planned and read so
that every row is accounted for.

Why not `ray.data.read_parquet`: it gives no row positions, and a repeated `item_id` must
be labeled exactly once, at its first occurrence (file order, then row order), with every
later occurrence an error row, as for manifests. So the plan reads the id column of every
file once (ids are small next to payloads): null or empty ids stop the run with one line
naming the file and column, repeated ones are recorded by global row position, and the
ids' order-independent hash sum is kept for the commit check. The read then goes row
group by row group, each task knowing the global position of every row it emits.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from raylabel.errors import InputError
from raylabel.io import storage
from raylabel.io.identity import id_hash_sum
from raylabel.io.storage import StorageOptions

#: rows per batch a read task emits (the decode and inference stages re-batch anyway)
READ_BATCH_ROWS = 2048
#: row groups the review reads at once for its few items (`read_packed_rows`)
READ_THREADS = 8


@dataclass
class PackedIds:
    """What the plan learned from the id columns of a packed input."""

    total: int
    id_hash: int
    duplicate_rows: np.ndarray  # global positions of repeated ids after their first row
    row_groups: list[tuple[str, int, int]] = field(default_factory=list)  # path, group, offset
    # item_id, identity (its file's size and mtime: a rewritten file changes all its items)
    identities: pa.Table | None = None


def scan_ids(key: str, files: list[str], fs: Any, opts: StorageOptions) -> PackedIds:
    """Read every file's `item_id` column once: refuse null or empty ids (exit 2), find the
    repeated ones, and lay out the row groups with their global row offsets."""
    chunks: list[pa.Array] = []
    idents: list[pa.Array] = []
    groups: list[tuple[str, int, int]] = []
    offset = 0
    for f in files:
        path = storage.resolve(f, opts)[1]
        pf = pq.ParquetFile(path, filesystem=fs)
        ids = pf.read(columns=["item_id"]).column("item_id").combine_chunks()
        _check_ids(key, f, ids)
        for g in range(pf.num_row_groups):
            groups.append((path, g, offset))
            offset += pf.metadata.row_group(g).num_rows
        chunks.append(ids.cast(pa.string()))
        info = fs.get_file_info(path)
        idents.append(pa.array([f"{info.size}:{info.mtime_ns}"] * len(ids), pa.string()))
    all_ids = pa.chunked_array(chunks, pa.string()).combine_chunks() if chunks else pa.array([])
    identities = pa.table(
        {"item_id": all_ids, "identity": pa.chunked_array(idents, pa.string()).combine_chunks()}
        if chunks
        else {"item_id": pa.array([], pa.string()), "identity": pa.array([], pa.string())}
    )
    return PackedIds(offset, id_hash_sum(all_ids), _repeats(all_ids), groups, identities)


def _check_ids(key: str, uri: str, ids: pa.Array) -> None:
    where = f"{key}: Parquet input {uri}, column 'item_id'"
    if ids.null_count:
        row = int(np.flatnonzero(~np.asarray(ids.is_valid()))[0])
        raise InputError(f"{where}: row {row} has a null id (every item needs one)")
    empty = pc.equal(pc.utf8_length(ids.cast(pa.string())), 0)
    if pc.any(empty).as_py():
        row = int(np.flatnonzero(np.asarray(empty))[0])
        raise InputError(f"{where}: row {row} has an empty id (every item needs one)")


def _repeats(ids: pa.Array) -> np.ndarray:
    """Global positions of every occurrence of an id after its first."""
    if not len(ids):
        return np.zeros(0, np.int64)
    codes = np.asarray(ids.dictionary_encode().indices, dtype=np.int64)
    _, first = np.unique(codes, return_index=True)
    is_first = np.zeros(len(codes), dtype=bool)
    is_first[first] = True
    return np.flatnonzero(~is_first).astype(np.int64)


def read_row_groups(
    batch: pa.Table,
    opts: StorageOptions,
    root: str,
    payload: str,
    inline: str,
    duplicate_rows: np.ndarray,
    uri_prefix: str,
    skip_rows: np.ndarray | None = None,
) -> Iterator[pa.Table]:
    """`map_batches` generator: each input row names one row group; its rows come out in
    slices with their uri (`<input>#<item_id>`) and whether they repeat an earlier id. Rows
    at `skip_rows` (global positions) are left out: they are carried from an earlier run."""
    fs, _ = storage.resolve(root, opts)
    for path, group, offset in zip(
        batch.column("path").to_pylist(),
        batch.column("row_group").to_pylist(),
        batch.column("offset").to_pylist(),
        strict=True,
    ):
        pf = pq.ParquetFile(path, filesystem=fs)
        pos = int(offset)
        for rb in pf.iter_batches(
            batch_size=READ_BATCH_ROWS, row_groups=[group], columns=["item_id", payload]
        ):
            n = rb.num_rows
            rows = np.arange(pos, pos + n, dtype=np.int64)
            pos += n
            ids = rb.column(0).cast(pa.string())
            out = pa.table(
                {
                    "item_id": ids,
                    inline: rb.column(1),
                    "uri": pc.binary_join_element_wise(uri_prefix + "#", ids, ""),
                    "duplicate": pa.array(np.isin(rows, duplicate_rows)),
                }
            )
            if skip_rows is not None and len(skip_rows):
                out = out.filter(pa.array(~np.isin(rows, skip_rows)))
            if out.num_rows:
                yield out


def packed_dataset(
    plan_uri: str,
    row_groups: list[tuple[str, int, int]],
    duplicate_rows: np.ndarray,
    payload: str,
    inline: str,
    opts: StorageOptions,
    read_cpus: float,
    skip_rows: np.ndarray | None = None,
    read_tasks: int = 0,
) -> Any:
    """The drop's rows as a Ray dataset: one read task per row group, in parallel, at most
    ``read_tasks`` at once when set (each new concurrent task can cost a fresh worker
    process that imports Ray Data: about a CPU-second on a small node)."""
    import ray.data

    items = [{"path": p, "row_group": g, "offset": o} for p, g, o in row_groups]
    ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    return ds.map_batches(
        read_row_groups,
        fn_kwargs={
            "opts": opts,
            "root": plan_uri,
            "payload": payload,
            "inline": inline,
            "duplicate_rows": duplicate_rows,
            "uri_prefix": plan_uri.rstrip("/"),
            "skip_rows": skip_rows,
        },
        batch_size=1,
        batch_format="pyarrow",
        num_cpus=read_cpus,
        **({"compute": ray.data.TaskPoolStrategy(size=read_tasks)} if read_tasks else {}),
    )


def read_packed_rows(
    wanted: pa.Array,
    identities: pa.Table,
    row_groups: list[tuple[str, int, int]],
    duplicate_rows: np.ndarray | None,
    layout: tuple[str, str, str],
    opts: StorageOptions,
) -> pa.Table:
    """The rows of a few items (the review's hundreds) as `read_row_groups` emits them (item_id,
    payload, uri, duplicate), read in-process from only the row groups that hold them. A
    second Ray Data pass over the drop for them costs a plan, cold workers and every row.
    ``layout`` is (root, payload column, inline column name); an id is read at its first
    occurrence, the one that was labeled."""
    root, payload, inline = layout
    ids = identities.column("item_id")
    positions = np.flatnonzero(pc.is_in(ids, value_set=wanted).to_numpy(zero_copy_only=False))
    if duplicate_rows is not None and len(duplicate_rows):
        positions = positions[~np.isin(positions, duplicate_rows)]
    offsets = np.asarray([o for _, _, o in row_groups], dtype=np.int64)
    group_of = np.searchsorted(offsets, positions, side="right") - 1
    fs, _ = storage.resolve(root, opts)

    def read(g: int) -> pa.Table:
        path, group, offset = row_groups[g]
        local = positions[group_of == g] - offset
        rows = pq.ParquetFile(path, filesystem=fs).read_row_group(
            group, columns=["item_id", payload]
        )
        return rows.take(pa.array(local, pa.int64()))

    groups = [int(g) for g in np.unique(group_of)]
    # a sample spread over a big drop touches most row groups: read them side by side
    # (pyarrow reads and decompresses without the GIL; on S3 each is a ranged GET)
    with ThreadPoolExecutor(max_workers=max(1, min(READ_THREADS, len(groups)))) as pool:
        parts = list(pool.map(read, groups))
    prefix = root.rstrip("/") + "#"
    if not parts:
        return pa.table(
            {"item_id": pa.array([], pa.string()), inline: pa.array([], pa.binary()),
             "uri": pa.array([], pa.string()), "duplicate": pa.array([], pa.bool_())}
        )  # fmt: skip
    got = pa.concat_tables(parts)
    got_ids = got.column(0).cast(pa.string())
    return pa.table(
        {
            "item_id": got_ids,
            inline: got.column(1),
            "uri": pc.binary_join_element_wise(prefix, got_ids, ""),
            "duplicate": pa.array(np.zeros(got.num_rows, dtype=bool)),
        }
    )
