"""Packed-Parquet inputs made from a folder of files, as a team that packs its drops would."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def pack_folder(folder: Path, out: Path, labels: dict[str, str] | None = None) -> Path:
    """One Parquet file (item_id = file name, bytes, and a label column when `labels` maps
    file names to classes) under `out`; returns `out`."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    columns = {"item_id": [f.name for f in files], "bytes": [f.read_bytes() for f in files]}
    if labels is not None:
        columns["label"] = [labels[f.name] for f in files]
    out.mkdir(parents=True)
    pq.write_table(pa.table(columns), out / "part-0.parquet")
    return out
