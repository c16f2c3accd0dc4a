"""Ray Data sink that writes a run's labels/ and errors/ tables in one streaming pass.

Each write task splits its rows into labeled and error rows, writes one Parquet file of
each under a name derived from the item ids it holds (a retried task overwrites its own
file instead of adding a duplicate), and returns only small statistics to the driver.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from ray.data import Datasink
from ray.data.block import Block, BlockAccessor

from raylabel.io import storage
from raylabel.io.identity import combine, id_hash_sum
from raylabel.io.layout import RunLayout
from raylabel.io.schema import ERROR_SCHEMA, LABEL_SCHEMA
from raylabel.io.storage import StorageOptions
from raylabel.label.multilabel_stats import add_multilabel_stats, merge_multilabel
from raylabel.stats.sampling import confidence_bins, stratum_key

HIST_BINS = 100


class RunSink(Datasink):
    """Ray Datasink for one run: the write tasks themselves write labels/ and errors/, and only
    small additive statistics reach the driver, however large the drop."""

    def __init__(
        self,
        run: RunLayout,
        opts: StorageOptions,
        classes: list[str],
        bin_edges: list[float],
        rows_per_file: int,
        schema: pa.Schema = LABEL_SCHEMA,
        task: str = "multiclass",
    ) -> None:
        self.schema = schema
        self.task = task
        self.run = run
        self.opts = opts
        self.classes = list(classes)
        self.bin_edges = list(bin_edges)
        self.rows_per_file = rows_per_file
        self.results: list[dict[str, Any]] = []

    @property
    def min_rows_per_write(self) -> int:
        """Ray Data's hint for rows per `write` call: part files of about `output.rows_per_file`
        rows instead of one small file per block."""
        return self.rows_per_file

    def get_name(self) -> str:
        """The write operator's name in Ray Data's progress and stats output."""
        return "WriteRun"

    def write(self, blocks: Iterable[Block], ctx: Any) -> dict[str, Any]:
        """Ray Data calls this in each write task: labeled rows to labels/, error rows to errors/,
        under a name fixed by the rows' item ids so a retried task overwrites its own part;
        returns this task's statistics."""
        tables = [BlockAccessor.for_block(b).to_arrow() for b in blocks]
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return empty_stats(self.classes, self.task)
        table = pa.concat_tables(tables)
        is_err = pc.is_valid(table.column("error"))
        labels = table.filter(pc.invert(is_err)).select(self.schema.names).cast(self.schema)
        errs = table.filter(is_err)
        errors = pa.table(
            {
                "item_id": errs.column("item_id"),
                "uri": errs.column("uri"),
                "stage": errs.column("error_stage"),
                "error": errs.column("error"),
            },
            schema=ERROR_SCHEMA,
        )
        name = _part_name(table.column("item_id"))
        fs, _ = storage.resolve(self.run.run_dir, self.opts)
        for sub, t in (("labels", labels), ("errors", errors)):
            if t.num_rows:
                _, path = storage.resolve(self.run.path(sub, f"part-{name}.parquet"), self.opts)
                if not storage.is_remote(self.run.run_dir):
                    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
                pq.write_table(t, path, filesystem=fs, compression="zstd")
        stats = block_stats(labels, errors, self.classes, self.bin_edges, self.task)
        stats["id_hash"] = id_hash_sum(table.column("item_id"))  # every row written, once
        return stats

    def on_write_complete(self, write_result: Any) -> None:
        """Ray Data calls this on the driver once every write task has finished: keeps their
        statistics for `merge_stats`, since the run is committed only if they reconcile."""
        self.results = list(write_result.write_returns)


def _part_name(item_ids: pa.ChunkedArray) -> str:
    """Same rows -> same file name, so a retried write replaces rather than duplicates."""
    joined = "\x00".join(item_ids.to_pylist()) + "\x00"
    return hashlib.sha1(joined.encode()).hexdigest()[:20]


def empty_stats(classes: list[str], task: str = "multiclass") -> dict[str, Any]:
    """The zero of the per-task statistics: every class present with every key, so merging tasks'
    statistics is plain addition."""
    if task == "multilabel":
        s = empty_stats(classes)
        add_multilabel_stats(s, pa.table({}), classes, [0.0, 1.0], HIST_BINS)
        return s
    return {
        "labeled": 0,
        "errors": 0,
        "accepted": 0,
        "per_class": {c: 0 for c in classes},
        "accepted_per_class": {c: 0 for c in classes},
        "hist": {c: [0] * HIST_BINS for c in classes},
        "margin_hist": {c: [0] * HIST_BINS for c in classes},
        "errors_by_stage": {},
        "error_examples": [],
        "strata": {},
        "accepted_strata": {},
        "id_hash": 0,
    }


def block_stats(
    labels: pa.Table,
    errors: pa.Table,
    classes: list[str],
    bin_edges: list[float],
    task: str = "multiclass",
) -> dict[str, Any]:
    """One write task's statistics (counts, confidence and margin histograms, strata, error
    examples): what the summary, the drift check and the review sample need, without reading the
    labels again."""
    s = empty_stats(classes, task)
    s["labeled"] = labels.num_rows
    s["errors"] = errors.num_rows
    if task == "multilabel":
        add_multilabel_stats(s, labels, classes, bin_edges, HIST_BINS)
    elif labels.num_rows:
        idx = labels.column("label_index").to_numpy()
        conf = labels.column("confidence").to_numpy()
        acc = labels.column("accepted").to_numpy(zero_copy_only=False)
        s["accepted"] = int(acc.sum())
        hist_bin = np.minimum((conf * HIST_BINS).astype(int), HIST_BINS - 1)
        margin = labels.column("margin").to_numpy()
        margin_bin = np.clip((margin * HIST_BINS).astype(int), 0, HIST_BINS - 1)
        strata_bin = confidence_bins(conf, bin_edges)
        for ci, c in enumerate(classes):
            m = idx == ci
            if not m.any():
                continue
            s["per_class"][c] = int(m.sum())
            s["accepted_per_class"][c] = int(acc[m].sum())
            s["hist"][c] = np.bincount(hist_bin[m], minlength=HIST_BINS).tolist()
            s["margin_hist"][c] = np.bincount(margin_bin[m], minlength=HIST_BINS).tolist()
            for b, count in zip(*np.unique(strata_bin[m], return_counts=True), strict=False):
                key = stratum_key(c, int(b), bin_edges)
                s["strata"][key] = int(count)
                n_acc = int(acc[m & (strata_bin == b)].sum())
                if n_acc:
                    s["accepted_strata"][key] = n_acc
    if errors.num_rows:
        for stage, count in zip(
            *np.unique(errors.column("stage").to_numpy(zero_copy_only=False), return_counts=True),
            strict=False,
        ):
            s["errors_by_stage"][str(stage)] = int(count)
        s["error_examples"] = errors.slice(0, 5).select(["item_id", "stage", "error"]).to_pylist()
    return s


def merge_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum per-task statistics (all additive) into the run's totals."""
    if not parts:
        return empty_stats([])
    out = empty_stats(list(parts[0]["per_class"]))
    for p in parts:
        for key in ("labeled", "errors", "accepted"):
            out[key] += p[key]
        out["id_hash"] = combine(out["id_hash"], p.get("id_hash", 0))
        for c, v in p["per_class"].items():
            out["per_class"][c] = out["per_class"].get(c, 0) + v
            out["accepted_per_class"][c] = (
                out["accepted_per_class"].get(c, 0) + p["accepted_per_class"][c]
            )
            out["hist"][c] = [
                a + b
                for a, b in zip(out["hist"].get(c, [0] * HIST_BINS), p["hist"][c], strict=False)
            ]
            if "margin_hist" in p:
                out["margin_hist"][c] = [
                    a + b
                    for a, b in zip(
                        out["margin_hist"].get(c, [0] * HIST_BINS),
                        p["margin_hist"][c],
                        strict=False,
                    )
                ]
        merge_multilabel(out, p)
        for field in ("errors_by_stage", "strata", "accepted_strata"):
            for k, v in p[field].items():
                out[field][k] = out[field].get(k, 0) + v
        if len(out["error_examples"]) < 10:
            out["error_examples"].extend(p["error_examples"][: 10 - len(out["error_examples"])])
    return out
