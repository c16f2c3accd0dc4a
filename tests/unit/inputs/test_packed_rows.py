"""The review's in-process read of a few packed items: the same rows, payloads and uris as
the label pass reads, at the first occurrence of a repeated id, from any file and row group."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from raylabel.config import load_config
from raylabel.inputs.packed import read_packed_rows, read_row_groups
from raylabel.inputs.sources import plan_drop
from raylabel.io.storage import StorageOptions


def _drop(root: Path) -> None:
    root.mkdir()
    for f, ids in enumerate((["a", "b", "c", "d", "e"], ["f", "b", "g", "h"])):
        table = pa.table(
            {"item_id": ids, "bytes": [f"{f}:{i}:{x}".encode() for i, x in enumerate(ids)]}
        )
        pq.write_table(table, root / f"part-{f}.parquet", row_group_size=2)


def _read(plan, wanted: list[str]) -> pa.Table:
    layout = (plan.uri, plan.payload_column, plan.inline_column)
    return read_packed_rows(
        pa.array(wanted, pa.string()),
        plan.identities,
        plan.row_groups,
        plan.duplicate_rows,
        layout,
        StorageOptions(),
    )


def _label_pass_rows(plan) -> dict[str, dict]:
    """Every row as the label pass's read tasks emit it, first occurrence of each id."""
    groups = pa.table(
        {
            "path": [p for p, _, _ in plan.row_groups],
            "row_group": [g for _, g, _ in plan.row_groups],
            "offset": [o for _, _, o in plan.row_groups],
        }
    )
    out: dict[str, dict] = {}
    for t in read_row_groups(
        groups, StorageOptions(), plan.uri, plan.payload_column, plan.inline_column,
        plan.duplicate_rows, plan.uri.rstrip("/"),
    ):  # fmt: skip
        for row in t.to_pylist():
            if not row["duplicate"]:
                out[row["item_id"]] = row
    return out


def test_reads_wanted_rows_as_the_label_pass_does(tmp_path: Path) -> None:
    _drop(tmp_path / "drop")
    plan = plan_drop(load_config([], [f"drop.path={tmp_path / 'drop'}"]))
    assert len(plan.row_groups) == 5  # 3 + 2 row groups over two files
    wanted = ["h", "a", "b", "e", "zzz"]  # across files and groups; one unknown id
    got = _read(plan, wanted)
    truth = _label_pass_rows(plan)
    rows = {r["item_id"]: r for r in got.to_pylist()}
    assert sorted(rows) == ["a", "b", "e", "h"]  # the unknown id is simply absent
    for item_id, row in rows.items():
        assert row == truth[item_id]
    # "b" repeats in the second file: the first occurrence (the labeled one) is read
    assert rows["b"]["bytes"] == b"0:1:b"
    assert got.num_rows == 4


def test_nothing_wanted_reads_nothing(tmp_path: Path) -> None:
    _drop(tmp_path / "drop")
    plan = plan_drop(load_config([], [f"drop.path={tmp_path / 'drop'}"]))
    got = _read(plan, ["nope"])
    assert got.num_rows == 0
    assert set(got.column_names) == {"item_id", "bytes", "uri", "duplicate"}
