"""Seed and drop readers: a path in any supported shape -> a plan -> a Ray Dataset.

A plan is built on the driver from metadata only (file listings, manifest columns,
Parquet footers), so bad inputs are rejected before any work starts and the number
of input items is known up front; the payloads are only ever read inside Ray tasks.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from raylabel.config import Config, default_extensions
from raylabel.errors import ConfigError, InputError
from raylabel.inputs import checks as input_schema
from raylabel.inputs import seed_labels
from raylabel.inputs.manifests import read_manifest, read_parquet_manifest
from raylabel.inputs.packed import packed_dataset, scan_ids
from raylabel.io import storage
from raylabel.io.identity import id_hash_sum
from raylabel.io.listing import check_input, list_files, list_items
from raylabel.io.storage import StorageOptions

if TYPE_CHECKING:
    import ray.data

MANIFEST_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")
LISTING_BLOCK_ROWS = 2000


@dataclass
class SourcePlan:
    """What to read and how; `listing` holds item_id/uri(/label) for file-based inputs."""

    uri: str
    kind: str  # "folder" | "manifest" | "parquet"
    num_items: int
    fingerprint: str
    listing: pa.Table | None = None
    parquet_files: list[str] | None = None
    payload_column: str = "bytes"
    duplicates: int = 0
    inline_column: str = "bytes"  # what the payload is called in the dataset ("text" for text)
    # files a folder listing left out, by reason (markers, OS metadata, other extensions)
    skipped: dict[str, int] = field(default_factory=dict)
    # sum of every input row's id hash (raylabel.io.identity): the commit check compares ids
    id_hash: int | None = None
    # packed Parquet: row groups with global offsets, and rows repeating an earlier id
    row_groups: list[tuple[str, int, int]] = field(default_factory=list)
    duplicate_rows: Any = None
    # item_id, identity for every input row in read order: a changed item has a new identity
    # (folder: size + mtime; packed: its file's; manifest: its uri; inline text: its hash)
    identities: pa.Table | None = None
    # task=multilabel: each listing label is a canonical set string joined by this
    label_separator: str | None = None

    def classes(self) -> list[str]:
        """The seed's label set, sorted so class indices are the same whenever the same labels are
        read; empty for unlabeled inputs."""
        if self.listing is None or "label" not in self.listing.column_names:
            return []
        labels = pc.unique(self.listing.column("label")).to_pylist()
        return seed_labels.classes_of(labels, self.label_separator)

    def label_index(self, classes: list[str]) -> Mapping[str, int]:
        """label string -> the int code training sees (see `seed_labels.label_index`)."""
        return seed_labels.label_index(classes, self.label_separator)

    def positive_weights(self, classes: list[str]) -> list[float] | None:
        """Multilabel: each class's BCE positive weight; None for multiclass."""
        if self.label_separator is None or self.listing is None:
            return None
        labels = self.listing.column("label").to_pylist()
        return seed_labels.positive_weights_of(labels, classes, self.label_separator)

    def strata_labels(self) -> list[str]:
        """What stratified splits and folds group the seed by (see LabelCoder.strata)."""
        assert self.listing is not None
        labels = self.listing.column("label").to_pylist()
        return seed_labels.strata_of(labels, self.label_separator)


def storage_options(cfg: Config) -> StorageOptions:
    """The `storage` section as the one small value every reader, writer and Ray task carries to
    reach object storage (credentials stay in the environment)."""
    return storage.options_for(cfg.storage)


def drop_name(cfg: Config) -> str:
    """Stable name of the drop: `drop.name`, else the last path component, made safe."""
    if cfg.drop.name:
        return cfg.drop.name
    safe = safe_drop_name(storage.basename(cfg.drop.path or ""))
    if not safe:
        raise ConfigError(f"drop.name: cannot derive a name from {cfg.drop.path!r}; set drop.name")
    return safe


def safe_drop_name(base: str) -> str:
    """A folder or manifest name as a run-directory name ("night 1" -> "night_1"); two
    different drops can meet here, which `label` and `nightly` refuse ("" if nothing is left)."""
    for suffix in MANIFEST_SUFFIXES:
        if base.lower().endswith(suffix):
            base = base[: -len(suffix)]
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in base).strip("._")


def plan_seed(cfg: Config) -> SourcePlan:
    """Plan the labeled seed from metadata on the driver, so a bad seed.path is refused before any
    training work starts."""
    cfg.require("seed.path")
    s = cfg.seed
    text = cfg.modality == "text"
    return _plan(
        "seed.path",
        s.path or "",
        s.format,
        s.extensions or default_extensions(cfg.modality),
        storage_options(cfg),
        labeled=True,
        label_column=s.label_column,
        payload_column=s.text_column if text else s.payload_column,
        text_column=s.text_column if text else None,
        label_sep=s.label_separator if cfg.task == "multilabel" else None,
    )


def plan_drop(cfg: Config) -> SourcePlan:
    """Plan an unlabeled drop from metadata on the driver, so a bad drop.path is refused before any
    Ray work; items whose uri lies outside the drop become error rows unless
    drop.allow_outside_uris is set."""
    cfg.require("drop.path")
    d = cfg.drop
    text = cfg.modality == "text"
    return _plan(
        "drop.path",
        d.path or "",
        d.format,
        d.extensions or default_extensions(cfg.modality),
        storage_options(cfg),
        labeled=False,
        label_column="label",
        payload_column=d.text_column if text else d.payload_column,
        text_column=d.text_column if text else None,
        confine_key=None if d.allow_outside_uris else "drop.allow_outside_uris=true",
    )


def _plan(
    key: str,
    uri: str,
    fmt: str,
    extensions: list[str],
    opts: StorageOptions,
    labeled: bool,
    label_column: str,
    payload_column: str,
    text_column: str | None = None,
    confine_key: str | None = None,
    label_sep: str | None = None,
) -> SourcePlan:
    check_input(uri, opts, key)
    is_dir = storage.is_dir(uri, opts)
    if fmt == "auto":
        fmt = _detect(uri, is_dir, opts)
    if fmt == "folder" and label_sep is not None:
        raise InputError(
            f"{key}: a class-per-folder seed cannot say an item has several classes; "
            "task=multilabel needs a manifest or Parquet whose label column holds a list "
            "(or a seed.label_separator-joined string)"
        )
    if fmt == "folder":
        if not is_dir:
            raise InputError(f"{key}: {uri} is not a folder/prefix")
        plan = _plan_folder(key, uri, extensions, opts, labeled)
    elif fmt == "manifest":
        plan = _plan_manifest(
            key, uri, opts, labeled, label_column, text_column, confine_key=confine_key,
            label_sep=label_sep,
        )  # fmt: skip
    else:
        plan = _plan_parquet(
            key, uri, opts, labeled, label_column, payload_column, is_dir, text_column, confine_key,
            label_sep,
        )  # fmt: skip
    if text_column is not None:
        plan.inline_column = "text"
    plan.label_separator = label_sep
    return plan


def _detect(uri: str, is_dir: bool, opts: StorageOptions) -> str:
    if is_dir:
        files = list_files(uri, opts, recursive=True)
        if files and all(f.rel_path.lower().endswith(".parquet") for f in files):
            return "parquet"
        return "folder"
    lower = uri.lower()
    if lower.endswith(".parquet"):
        return "parquet"
    if lower.endswith((".csv", ".jsonl", ".json")):
        return "manifest"
    raise InputError(f"cannot tell the format of {uri}; set *.format")


def _plan_folder(
    key: str, uri: str, extensions: list[str], opts: StorageOptions, labeled: bool
) -> SourcePlan:
    found = list_items(uri, opts, recursive=True, extensions=extensions)
    files = found.files
    if not files:
        raise storage.InputNotFound(
            f"{key} has no files with extensions {', '.join(extensions)}: {uri}"
        )
    item_ids = [f.rel_path for f in files]
    columns: dict[str, list[Any]] = {"item_id": item_ids, "uri": [f.uri for f in files]}
    if labeled:
        labels = []
        for f in files:
            parts = f.rel_path.split("/")
            if len(parts) < 2:
                raise InputError(
                    f"{key}: image-folder seeds are laid out <root>/<class>/<file>; "
                    f"{f.rel_path!r} is not inside a class folder"
                )
            labels.append(parts[0])
        columns["label"] = labels
    columns["size"] = [f.size for f in files]  # oversized items are refused unread
    listing, _ = input_schema.confine_real(pa.table(columns), uri)
    blank = [""] * len(files)  # drops have no label: zip must not stop at an empty list
    # content identity: a file rewritten with the same size still gets a new mtime
    identity = (f"{f.size}:{f.mtime_ns}" for f in files)
    fp = _fingerprint(zip(item_ids, identity, columns.get("label", blank), strict=True))
    return SourcePlan(
        uri=uri,
        kind="folder",
        num_items=len(files),
        fingerprint=fp,
        listing=listing,
        skipped=dict(found.skipped),
        id_hash=id_hash_sum(item_ids),
        identities=pa.table(
            {"item_id": item_ids, "identity": [f"{f.size}:{f.mtime_ns}" for f in files]}
        ),
    )


def _plan_manifest(
    key: str,
    uri: str,
    opts: StorageOptions,
    labeled: bool,
    label_column: str,
    text_column: str | None = None,
    table: pa.Table | None = None,
    is_dir: bool = False,
    confine_key: str | None = None,
    label_sep: str | None = None,
) -> SourcePlan:
    """A table of item_id/uri(/label) rows, or of inline text; `table` is given when it was
    read from a Parquet folder. `confine_key` set: uris outside the root become error rows."""
    if table is None:
        table = read_manifest(uri, opts, key)
    where = f"{key}: manifest {uri}"
    try:
        input_schema.check_manifest(
            table, where, label_column if labeled else None, text_column, label_sep is not None
        )
    except input_schema.SchemaError as exc:
        raise InputError(str(exc)) from None
    if text_column is not None and text_column in table.column_names:
        return _plan_inline_text(key, uri, table, labeled, label_column, text_column, label_sep)
    # Plain local paths are made absolute: workers need not share the driver's directory.
    located = uri if "://" in uri else os.path.abspath(os.path.expanduser(uri))
    base = input_schema.drop_root(located, is_dir)
    uris = [_absolute(str(u), base) for u in table.column("uri").to_pylist()]
    ids = (
        [str(i) for i in table.column("item_id").to_pylist()]
        if "item_id" in table.column_names
        else [str(u) for u in table.column("uri").to_pylist()]
    )
    columns: dict[str, list[str]] = {"item_id": ids, "uri": uris}
    if labeled:
        columns["label"] = seed_labels.label_strings(
            table.column(label_column).to_pylist(), label_sep, where
        )
    listing = pa.table(columns)
    listing, dups = _dedupe(listing)
    if confine_key is not None:
        listing, _ = input_schema.confine(listing, base, confine_key)
        listing, _ = input_schema.confine_real(listing, base)
    fp = _fingerprint(zip(ids, uris, columns.get("label", [""] * len(ids)), strict=True))
    return SourcePlan(
        uri=uri,
        kind="manifest",
        num_items=len(ids),
        fingerprint=fp,
        listing=listing,
        duplicates=dups,
        id_hash=id_hash_sum(listing.column("item_id")),
        identities=pa.table({"item_id": listing.column("item_id"), "identity": listing["uri"]}),
    )


def _plan_inline_text(
    key: str,
    uri: str,
    table: pa.Table,
    labeled: bool,
    label_column: str,
    text_column: str,
    label_sep: str | None = None,
) -> SourcePlan:
    """JSONL/CSV/Parquet rows that carry their text: the listing holds the payload."""
    if labeled and label_column not in table.column_names:
        raise InputError(f"{key}: manifest {uri} has no '{label_column}' column")
    n = table.num_rows
    ids = (
        [str(i) for i in table.column("item_id").to_pylist()]
        if "item_id" in table.column_names
        else [f"row-{i:08d}" for i in range(n)]
    )
    uris = (
        [str(u) for u in table.column("uri").to_pylist()]
        if "uri" in table.column_names
        else [f"{uri}#{i}" for i in ids]
    )
    texts = table.column(text_column).to_pylist()
    columns: dict[str, list] = {"item_id": ids, "uri": uris, "text": texts}
    if labeled:
        columns["label"] = seed_labels.label_strings(
            table.column(label_column).to_pylist(), label_sep, f"{key}: manifest {uri}"
        )
    listing, dups = _dedupe(pa.table(columns))
    digests = [hashlib.sha1(str(t).encode()).hexdigest() for t in texts]
    fp = _fingerprint(zip(ids, digests, columns.get("label", [""] * n), strict=True))
    return SourcePlan(
        uri=uri,
        kind="manifest",
        num_items=n,
        fingerprint=fp,
        listing=listing,
        duplicates=dups,
        id_hash=id_hash_sum(listing.column("item_id")),
        identities=pa.table({"item_id": ids, "identity": [d[:16] for d in digests]}),
    )


def _absolute(u: str, base: str) -> str:
    if "://" in u or u.startswith("/"):
        return u
    return f"{base.rstrip('/')}/{u}"


def _dedupe(listing: pa.Table) -> tuple[pa.Table, int]:
    """Mark repeated item_ids so each id is labeled once; repeats become error rows later."""
    ids = listing.column("item_id").to_pylist()
    seen: set[str] = set()
    dup = []
    for i in ids:
        dup.append(i in seen)
        seen.add(i)
    n = sum(dup)
    return listing.append_column("duplicate", pa.array(dup, pa.bool_())), n


def _plan_parquet(
    key: str,
    uri: str,
    opts: StorageOptions,
    labeled: bool,
    label_column: str,
    payload_column: str,
    is_dir: bool,
    text_column: str | None = None,
    confine_key: str | None = None,
    label_sep: str | None = None,
) -> SourcePlan:
    fs, _ = storage.resolve(uri, opts)
    files = [f.uri for f in list_files(uri, opts, extensions=[".parquet"])] if is_dir else [uri]
    if not files:
        raise storage.InputNotFound(f"{key} has no .parquet files: {uri}")
    schema = pq.read_schema(storage.resolve(files[0], opts)[1], filesystem=fs)
    names = set(schema.names)
    if payload_column not in names:
        if "uri" in names:
            table = read_parquet_manifest(key, files, schema, fs, opts, label_column, labeled)
            return _plan_manifest(
                key,
                uri,
                opts,
                labeled,
                label_column,
                table=table,
                is_dir=is_dir,
                confine_key=confine_key,
                label_sep=label_sep,
            )
        raise InputError(
            f"{key}: Parquet input {files[0]} has neither the payload column "
            f"'{payload_column}' nor a 'uri' column"
        )
    label = label_column if labeled else None
    text = text_column is not None
    try:
        input_schema.check_packed(
            schema, f"{key}: Parquet input {files[0]}", payload_column, text, label,
            label_sep is not None,
        )  # fmt: skip
    except input_schema.SchemaError as exc:
        raise InputError(str(exc)) from None
    id_cols = ["item_id"] + ([label_column] if labeled else [])
    total, fingerprint = _packed_files(key, files, schema, fs, opts, [*id_cols, payload_column])
    ids = scan_ids(key, files, fs, opts)  # null/empty ids stop here; repeats are recorded
    listing = None
    if labeled:
        parts = [
            pq.read_table(storage.resolve(f, opts)[1], filesystem=fs, columns=id_cols)
            for f in files
        ]
        t = pa.concat_tables(parts)
        listing = pa.table(
            {
                "item_id": t.column("item_id").cast(pa.string()),
                "label": seed_labels.label_strings(
                    t.column(label_column).to_pylist(), label_sep, f"{key}: Parquet input {uri}"
                )
                if label_sep is not None
                else t.column(label_column).cast(pa.string()),
            }
        )
    return SourcePlan(
        uri=uri,
        kind="parquet",
        num_items=total,
        fingerprint=fingerprint,
        listing=listing,
        parquet_files=files,
        payload_column=payload_column,
        duplicates=len(ids.duplicate_rows),
        id_hash=ids.id_hash,
        row_groups=ids.row_groups,
        duplicate_rows=ids.duplicate_rows,
        identities=ids.identities,
    )


def _packed_files(
    key: str,
    files: list[str],
    schema: pa.Schema,
    fs: Any,
    opts: StorageOptions,
    columns: list[str],
) -> tuple[int, str]:
    """(rows in all files, fingerprint): every file's footer is read, and each must agree
    with the first file on the columns labeling reads."""
    total = 0
    h = hashlib.sha256()
    for f in files:
        meta = pq.read_metadata(storage.resolve(f, opts)[1], filesystem=fs)
        try:
            input_schema.same_schema(
                schema, meta.schema.to_arrow_schema(), columns, f"{key}: Parquet input {f}"
            )
        except input_schema.SchemaError as exc:
            raise InputError(str(exc)) from None
        total += meta.num_rows
        h.update(f"{f}:{meta.num_rows}:{meta.serialized_size}".encode())
    return total, h.hexdigest()[:16]


def _fingerprint(rows: object) -> str:
    h = hashlib.sha256()
    for row in rows:  # type: ignore[attr-defined]
        h.update("\x1f".join(row).encode())
        h.update(b"\x1e")
    return h.hexdigest()[:16]


def listing_dataset(listing: pa.Table, block_rows: int = LISTING_BLOCK_ROWS) -> ray.data.Dataset:
    """Blocks of a few thousand ids so decode work spreads over tasks from the start."""
    import ray.data

    blocks = [listing.slice(i, block_rows) for i in range(0, listing.num_rows, block_rows)]
    return ray.data.from_arrow(blocks or [listing])


def drop_dataset(
    plan: SourcePlan,
    opts: StorageOptions,
    read_cpus: float = 1.0,
    carried: set[str] | None = None,
    read_tasks: int = 0,
) -> ray.data.Dataset:
    """Rows with item_id, uri and (for packed Parquet) inline `bytes`. `read_cpus` is the
    reservation of a read task (reads are I/O: a full CPU each starves the actors);
    `read_tasks` caps packed reads in flight (0: Ray Data decides)."""

    if plan.kind == "parquet":
        skip = None
        if carried and plan.identities is not None:
            ids = plan.identities.column("item_id").to_pylist()
            skip = np.flatnonzero([i in carried for i in ids]).astype(np.int64)
        return packed_dataset(
            plan.uri,
            plan.row_groups,
            plan.duplicate_rows,
            plan.payload_column,
            plan.inline_column,
            opts,
            read_cpus,
            skip,
            read_tasks,
        )
    assert plan.listing is not None
    listing = plan.listing
    if carried:
        keep = [i not in carried for i in listing.column("item_id").to_pylist()]
        listing = listing.filter(pa.array(keep, pa.bool_()))
    return listing_dataset(listing)


def feedback_listing(root: str, opts: StorageOptions) -> pa.Table | None:
    """Reviewed items from earlier runs (item_id, uri, label, weight, run, drop, payload_uri),
    newest review per uri. ``weight`` is the review sample's design weight (null for items
    reviewed outside the probability sample, or written before weights were kept); ``run``
    names the file; ``payload_uri`` is the kept copy of the item's bytes (null for reviews
    written before copies were kept: those are read from ``uri``)."""
    base = storage.join(root, "feedback")
    if not storage.exists(base, opts):
        return None
    files = list_files(base, opts, extensions=[".parquet"])
    latest: dict[str, tuple[str, str, float | None, str | None]] = {}
    for f in files:  # sorted by path: run ids sort by time, so later reviews win
        t = pq.read_table(io.BytesIO(storage.read_bytes(f.uri, opts)))
        sampled = _sampled_weights(t)
        kept = (
            t.column("payload_uri").to_pylist()
            if "payload_uri" in t.column_names
            else [None] * t.num_rows
        )
        for uri, label, w, p in zip(
            t.column("uri").to_pylist(), t.column("label").to_pylist(), sampled, kept, strict=True
        ):
            latest[uri] = (label, f.rel_path, w, p)
    if not latest:
        return None
    uris = sorted(latest)
    return pa.table(
        {
            "item_id": [f"feedback/{latest[u][1]}#{u}" for u in uris],
            "uri": uris,
            "label": [latest[u][0] for u in uris],
            "weight": pa.array([latest[u][2] for u in uris], pa.float64()),
            "run": [latest[u][1] for u in uris],
            "drop": [latest[u][1].split("/", 1)[0] for u in uris],
            "payload_uri": pa.array([latest[u][3] for u in uris], pa.string()),
        }
    )


def fetchable(feedback: pa.Table) -> pa.Array:
    """Where to read each feedback item: its kept copy, else its original uri."""
    return pc.coalesce(feedback.column("payload_uri"), feedback.column("uri"))


def _sampled_weights(t: pa.Table) -> list[float | None]:
    """Design weights of the rows that came from the probability sample, else None."""
    if "weight" not in t.column_names:
        return [None] * t.num_rows
    weights = t.column("weight").to_pylist()
    flags = (
        t.column("sampled").to_pylist() if "sampled" in t.column_names else [True] * len(weights)
    )
    return [
        w if f and w is not None and w > 0 else None for w, f in zip(weights, flags, strict=True)
    ]
