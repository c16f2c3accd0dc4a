"""Reading a manifest (CSV / JSONL / Parquet) into a table, with one-line errors."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from raylabel.errors import InputError
from raylabel.inputs import checks as input_schema
from raylabel.io import storage
from raylabel.io.storage import StorageOptions


def read_manifest(uri: str, opts: StorageOptions, key: str | None = None) -> pa.Table:
    """One manifest file as a table; unreadable is an InputError naming it."""
    data = storage.read_bytes(uri, opts)
    lower = uri.lower()
    try:
        if lower.endswith(".parquet"):
            return pq.read_table(io.BytesIO(data))
        if lower.endswith(".csv"):
            return pacsv.read_csv(
                io.BytesIO(data),
                convert_options=pacsv.ConvertOptions(
                    column_types={"item_id": pa.string(), "label": pa.string()}
                ),
            )
        rows = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
        return pa.Table.from_pylist(rows)
    except (pa.ArrowException, json.JSONDecodeError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = f"{key}: {uri}" if key else uri
        raise InputError(f"{where}: unreadable manifest ({first})") from None


def read_parquet_manifest(
    key: str,
    files: list[str],
    schema: pa.Schema,
    fs: object,
    opts: StorageOptions,
    label_column: str,
    labeled: bool,
) -> pa.Table:
    """The uri/item_id(/label) columns of a Parquet manifest (one file or a folder of them)."""
    columns = [c for c in ("item_id", "uri") if c in schema.names]
    if labeled and label_column in schema.names:
        columns.append(label_column)
    parts = []
    for f in files:
        path = storage.resolve(f, opts)[1]
        try:
            other = pq.read_schema(path, filesystem=fs)
            input_schema.same_schema(schema, other, columns, f"{key}: Parquet input {f}")
            parts.append(pq.read_table(path, filesystem=fs, columns=columns))
        except input_schema.SchemaError as exc:
            raise InputError(str(exc)) from None
        except pa.ArrowException as exc:
            raise InputError(f"{key}: Parquet input {f}: unreadable ({first_line(exc)})") from None
    return pa.concat_tables(parts)


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def first_line(exc: BaseException) -> str:
    """An exception's first line (its type when it says nothing)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
