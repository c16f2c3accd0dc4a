"""Input schema checks and drop-root confinement, run while planning (before any Ray work).

A manifest or Parquet drop whose columns drifted (missing, renamed, wrong type, nulls) is
refused with one line naming the key, the column and the file: a nightly job must stop in
its first second, not label garbage or die in a worker an hour later. A manifest row whose
`uri` points outside the drop's root (`../x`, `/etc/passwd`, another bucket) is not read
unless `drop.allow_outside_uris` says so; it becomes that item's error row instead.
"""

from __future__ import annotations

import os
import posixpath

import pyarrow as pa
import pyarrow.compute as pc

INPUT_ERROR_COLUMN = "input_error"


class SchemaError(ValueError):
    """A column is missing or has the wrong type; raised as the caller's InputError."""


def _kind(t: pa.DataType) -> str:
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return "binary"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_null(t):
        return "null"
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and _kind(t.value_type) in (
        "string",
        "null",
    ):
        return "list of strings"
    return str(t)


def _require(
    schema: pa.Schema, column: str, allowed: tuple[str, ...], where: str, hint: str = ""
) -> None:
    if column not in schema.names:
        found = ", ".join(schema.names) or "none"
        raise SchemaError(f"{where} has no '{column}' column (columns: {found})")
    kind = _kind(schema.field(column).type)
    if kind not in allowed:
        raise SchemaError(
            f"{where} column '{column}' is {schema.field(column).type}, "
            f"expected {' or '.join(allowed)}{hint}"
        )


def _no_nulls(table: pa.Table, column: str, where: str) -> None:
    nulls = table.column(column).null_count
    if nulls:
        raise SchemaError(f"{where} column '{column}' has {nulls} empty (null) values")


def check_manifest(
    table: pa.Table,
    where: str,
    label_column: str | None,
    text_column: str | None = None,
    multilabel: bool = False,
) -> None:
    """`uri` (or the inline text column) is string, `item_id` string or integer, the label
    column string; none of them null. `where` is e.g. "drop.path: manifest s3://b/m.csv".
    Multilabel: the label is a list of strings or a joined string, null meaning no class."""
    schema = table.schema
    if text_column is not None and text_column in schema.names:
        _require(schema, text_column, ("string", "binary"), where)
    else:
        _require(schema, "uri", ("string",), where)
        _no_nulls(table, "uri", where)
    if "item_id" in schema.names:
        _require(schema, "item_id", ("string", "integer"), where)
        _no_nulls(table, "item_id", where)
    if label_column is not None and multilabel:
        _require(schema, label_column, MULTILABEL_KINDS, where, " (class names)")
    elif label_column is not None:
        _require(schema, label_column, ("string",), where, " (quote class names)")
        _no_nulls(table, label_column, where)


#: what a multilabel seed's label column may be (null: an item with no class)
MULTILABEL_KINDS = ("list of strings", "string", "null")


def check_packed(
    schema: pa.Schema,
    where: str,
    payload_column: str,
    text: bool,
    label_column: str | None,
    multilabel: bool = False,
) -> None:
    """Packed Parquet: `item_id` string/integer, payload binary (text: string or binary),
    label string (multilabel: a list of strings too)."""
    _require(schema, "item_id", ("string", "integer"), where)
    _require(schema, payload_column, ("string", "binary") if text else ("binary",), where)
    if label_column is not None:
        kinds = MULTILABEL_KINDS if multilabel else ("string",)
        _require(schema, label_column, kinds, where, " (quote class names)")


def same_schema(first: pa.Schema, other: pa.Schema, columns: list[str], where: str) -> None:
    """Every file of a Parquet folder must carry the columns of the first one, same types."""
    for column in columns:
        if column not in first.names:
            continue
        if column not in other.names:
            raise SchemaError(f"{where} has no '{column}' column (the first file has it)")
        if other.field(column).type != first.field(column).type:
            raise SchemaError(
                f"{where} column '{column}' is {other.field(column).type}, "
                f"but {first.field(column).type} in the first file"
            )


def drop_root(manifest_uri: str, is_dir: bool) -> str:
    """The root a drop manifest may read below: its folder (a Parquet folder: itself)."""
    return manifest_uri.rstrip("/") if is_dir else manifest_uri.rstrip("/").rsplit("/", 1)[0]


def inside(uri: str, root: str) -> bool:
    """Whether `uri`, normalised, lies strictly below `root` (same scheme and bucket)."""
    r_scheme, r_sep, r_rest = root.partition("://")
    if r_sep:
        if not uri.startswith(f"{r_scheme}://"):
            return False
        rest = uri[len(r_scheme) + 3 :]
        if ".." in rest.split("/"):
            return False
        return posixpath.normpath(rest).startswith(r_rest.rstrip("/") + "/")
    if "://" in uri:
        scheme, _, rest = uri.partition("://")
        if scheme.lower() != "file" or not rest.startswith("/"):
            return False
        uri = rest
    if ".." in uri.split("/"):
        return False
    return os.path.normpath(uri).startswith(os.path.normpath(root).rstrip("/") + "/")


def confine(listing: pa.Table, root: str, key: str) -> tuple[pa.Table, int]:
    """Add an `input_error` column (only when needed) refusing rows whose uri is outside root."""
    uris = listing.column("uri").to_pylist()
    errors = [
        None if inside(u, root) else f"uri is outside the drop root {root} (set {key} to allow it)"
        for u in uris
    ]
    refused = sum(e is not None for e in errors)
    if not refused:
        return listing, 0
    return listing.append_column(INPUT_ERROR_COLUMN, pa.array(errors, pa.string())), refused


def confine_real(listing: pa.Table, root: str) -> tuple[pa.Table, int]:
    """Local inputs: refuse rows whose file *resolves* outside the root (a symlink to
    elsewhere, or a symlinked folder), adding to any refusal already there. Object stores
    have no symlinks; their rows pass unchanged."""
    if "://" in root and not root.startswith("file://"):
        return listing, 0
    real_root = os.path.realpath(root.removeprefix("file://"))
    prior = refused_mask(listing)
    errors: list[str | None] = []
    refused = 0
    for uri, before in zip(listing.column("uri").to_pylist(), prior, strict=True):
        if before is None and "://" not in uri.removeprefix("file://"):
            real = os.path.realpath(uri.removeprefix("file://"))
            if real != real_root and not real.startswith(real_root.rstrip("/") + "/"):
                before = f"resolves outside the drop root {root} (to {real})"
                refused += 1
        errors.append(before)
    if not refused:
        return listing, 0
    column = pa.array(errors, pa.string())
    if INPUT_ERROR_COLUMN in listing.column_names:
        i = listing.schema.get_field_index(INPUT_ERROR_COLUMN)
        return listing.set_column(i, INPUT_ERROR_COLUMN, column), refused
    return listing.append_column(INPUT_ERROR_COLUMN, column), refused


def refused_mask(batch: pa.Table) -> list[str | None]:
    """Per-row planning refusal (or None) of a batch, for the decode steps."""
    if INPUT_ERROR_COLUMN not in batch.column_names:
        return [None] * batch.num_rows
    return pc.cast(batch.column(INPUT_ERROR_COLUMN), pa.string()).to_pylist()
