"""Carrying rows forward: a drop that grew, or an attempt that died half way, is finished
without running the model again on what is already labeled.

Why our own part files and not `ray.data.checkpoint`: Ray Data 2.60's checkpointing keeps
a second store of ids (`CheckpointConfig(id_column=..., checkpoint_path=...)`), filters the
*input* by it on restore and only reaches rows the datasink later writes; it knows nothing
of content identity (a changed file with an old id would be skipped), of model versions, or
of a previous *committed* run, and it needs a path shared by the whole cluster. A run's own
part files already are such a store: every row written carries its id, each attempt
records what it was asked to label (`_inputs.parquet`: id and content identity) and with
which model (`_attempt.json`), and a part file is either whole or unreadable. So a new
attempt reads the donors' id columns only, takes each unchanged item once from one donor
part, and sends the rest through the model; carried rows get the new run id and tonight's
thresholds, and the commit check covers them like any other row.

Donors, newest first: attempts of the drop that never committed (a killed driver, a lost
node) and were started after the drop's last committed run, then that committed run —
each only if it labeled with the same model version and scorer.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from raylabel.inputs.sources import SourcePlan
from raylabel.io import layout, storage
from raylabel.io.listing import list_dirs, list_files
from raylabel.io.storage import StorageOptions

INPUTS_FILE = "_inputs.parquet"
ATTEMPT_FILE = "_attempt.json"


def record_attempt(
    run: layout.RunLayout, plan: SourcePlan, version: str, scorer: str, opts: StorageOptions
) -> None:
    """What this attempt is asked to label and with which model: what a later attempt needs
    to know before it may reuse these rows."""
    buf = pa.BufferOutputStream()
    pq.write_table(plan.identities, buf, compression="zstd")
    storage.write_bytes(run.path(INPUTS_FILE), buf.getvalue().to_pybytes(), opts)
    body = {"model_version": version, "scorer": scorer, "started_at": layout.utc_now().isoformat()}
    storage.write_json(run.path(ATTEMPT_FILE), body, opts)


@dataclass
class Reuse:
    """Rows to carry: per donor part file the ids to take from it, and the drop's history."""

    parts: list[tuple[str, list[str]]] = field(default_factory=list)
    reused: set[str] = field(default_factory=set)
    removed: int = 0
    donors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """What `summary.json` records about it."""
        return {"reused": len(self.reused), "removed": self.removed, "donors": self.donors}


def donors(
    root: str, drop: str, version: str, scorer: str, opts: StorageOptions
) -> tuple[list[layout.RunLayout], str | None]:
    """(donor runs newest first, the drop's last committed run id)."""
    committed = layout.latest_run(root, drop, opts)
    drop_dir = storage.join(root, "runs", drop)
    if not storage.exists(drop_dir, opts):
        return [], committed
    out = []
    for run_id in sorted(list_dirs(drop_dir, opts), reverse=True):
        if committed and run_id < committed:
            break
        run = layout.RunLayout(root, drop, run_id)
        if _same_model(run, version, scorer, opts):
            out.append(run)
    return out, committed


def _same_model(run: layout.RunLayout, version: str, scorer: str, opts: StorageOptions) -> bool:
    uri = run.path(ATTEMPT_FILE)
    if not storage.exists(uri, opts):
        return False  # written before attempts were recorded: nothing to reuse safely
    try:
        body = storage.read_json(uri, opts)
    except (storage.StorageError, ValueError):
        return False
    return body.get("model_version") == version and body.get("scorer") == scorer


def plan_reuse(
    plan: SourcePlan,
    root: str,
    drop: str,
    runs: list[layout.RunLayout],
    committed: str | None,
    opts: StorageOptions,
) -> Reuse:
    """Which current items can be carried, from which donor part; removed = items of the last
    committed run that the drop no longer holds."""
    current = _identity_map(plan.identities)
    reuse = Reuse()
    if committed:
        reuse.removed = _removed(layout.RunLayout(root, drop, committed), plan, opts)
    for run in runs:
        donor_ids = _donor_identity(run, opts)
        if donor_ids is None:
            continue
        wanted = {i for i, ident in donor_ids.items() if current.get(i) == ident}
        wanted -= reuse.reused
        if not wanted:
            continue
        taken = _take_from_parts(run, wanted, opts)
        for part, ids in taken:
            reuse.parts.append((part, ids))
            reuse.reused.update(ids)
        reuse.donors.append(run.run_id)
    return reuse


def _identity_map(identities: pa.Table) -> dict[str, str]:
    """id -> identity for ids that occur once (a repeated id is always processed again)."""
    ids = identities.column("item_id").to_pylist()
    idents = identities.column("identity").to_pylist()
    seen: dict[str, str] = {}
    repeated: set[str] = set()
    for i, ident in zip(ids, idents, strict=True):
        if i in seen:
            repeated.add(i)
        seen[i] = ident
    for i in repeated:
        del seen[i]
    return seen


def _donor_identity(run: layout.RunLayout, opts: StorageOptions) -> dict[str, str] | None:
    uri = run.path(INPUTS_FILE)
    try:
        table = pq.read_table(io.BytesIO(storage.read_bytes(uri, opts)))
    except (storage.StorageError, OSError, pa.ArrowInvalid):
        return None
    return _identity_map(table)


def _removed(run: layout.RunLayout, plan: SourcePlan, opts: StorageOptions) -> int:
    previous = _donor_identity(run, opts)
    if previous is None:
        return 0
    now = set(plan.identities.column("item_id").to_pylist())
    return sum(1 for i in previous if i not in now)


def _take_from_parts(
    run: layout.RunLayout, wanted: set[str], opts: StorageOptions
) -> list[tuple[str, list[str]]]:
    """Each wanted id from exactly one readable part (a killed write leaves an unreadable
    file; a retried one may have left a second copy of some rows in another part)."""
    out = []
    for sub in ("labels", "errors"):
        base = run.path(sub)
        if not storage.exists(base, opts):
            continue
        for part in list_files(base, opts, recursive=False, extensions=[".parquet"]):
            try:
                ids = _carriable_ids(part.uri, sub == "errors", opts)
            except (OSError, pa.ArrowInvalid):
                continue
            take = [i for i in ids if i in wanted]
            if take:
                wanted.difference_update(take)
                out.append((part.uri, take))
    return out


def _carriable_ids(uri: str, errors: bool, opts: StorageOptions) -> list[str]:
    """Ids whose rows may be carried: every label, and the errors an unchanged item would
    hit again (input, decode); a read error may have been the store's bad minute, so it is
    tried again."""
    fs, path = storage.resolve(uri, opts)
    cols = ["item_id", "stage"] if errors else ["item_id"]
    t = pq.read_table(path, filesystem=fs, columns=cols)
    if errors:
        t = t.filter(pc.not_equal(t.column("stage"), "read"))
    return t.column("item_id").to_pylist()


def carried_rows(
    batch: pa.Table,
    opts: StorageOptions,
    schema: pa.Schema,
    classes: list[str],
    thresholds: list[float],
    run_id: str,
) -> pa.Table:
    """`map_batches` over (part uri, ids) rows: the donor's rows in the inference actors'
    output shape, with this run's id and tonight's thresholds (accepted recomputed)."""
    tables = []
    for uri, ids in zip(batch.column("part").to_pylist(), batch.column("ids").to_pylist(),
                        strict=True):  # fmt: skip
        fs, path = storage.resolve(uri, opts)
        t = pq.read_table(path, filesystem=fs)
        t = t.filter(pc.is_in(t.column("item_id"), value_set=pa.array(ids, pa.string())))
        is_error = "stage" in t.column_names and "label" not in t.column_names
        tables.append(_as_errors(t, schema) if is_error else _as_labels(t, schema, thresholds))
    out = pa.concat_tables(tables) if tables else _empty(schema)
    return out.set_column(
        out.schema.get_field_index("run_id"), "run_id", pa.array([run_id] * out.num_rows)
    )


def _as_labels(t: pa.Table, schema: pa.Schema, thresholds: list[float]) -> pa.Table:
    idx = t.column("label_index").to_numpy()
    thr = np.asarray(thresholds, dtype=np.float32)[idx]
    conf = t.column("confidence").to_numpy()
    cols = {name: t.column(name) for name in schema.names}
    cols["threshold"] = pa.array(thr, pa.float32())
    cols["accepted"] = pa.array(conf >= thr)
    out = pa.table(cols, schema=schema)
    n = out.num_rows
    out = out.append_column("error", pa.nulls(n, pa.string()))
    return out.append_column("error_stage", pa.nulls(n, pa.string()))


def _as_errors(t: pa.Table, schema: pa.Schema) -> pa.Table:
    n = t.num_rows
    cols = {f.name: pa.nulls(n, f.type) for f in schema}
    cols["item_id"], cols["uri"] = t.column("item_id"), t.column("uri")
    cols["run_id"] = pa.array([""] * n, pa.string())
    out = pa.table(cols, schema=schema)
    out = out.append_column("error", t.column("error"))
    return out.append_column("error_stage", t.column("stage"))


def _empty(schema: pa.Schema) -> pa.Table:
    out = schema.empty_table()
    out = out.append_column("error", pa.array([], pa.string()))
    return out.append_column("error_stage", pa.array([], pa.string()))


def carried_dataset(
    reuse: Reuse,
    opts: StorageOptions,
    schema: pa.Schema,
    classes: list[str],
    thresholds: list[float],
    run_id: str,
) -> Any:
    """The carried rows as a Ray dataset, one task per donor part."""
    import ray.data

    items = [{"part": p, "ids": ids} for p, ids in reuse.parts]
    ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    return ds.map_batches(
        carried_rows,
        fn_kwargs={
            "opts": opts,
            "schema": schema,
            "classes": classes,
            "thresholds": thresholds,
            "run_id": run_id,
        },
        batch_size=1,
        batch_format="pyarrow",
        num_cpus=0.25,
    )
