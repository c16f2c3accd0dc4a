"""Stratified, deterministic review sampling that runs as one streaming pass (no Ray here).

Every item gets a pseudo-random key ``u = hash01(item_id, seed)``; the sample of a stratum
(predicted label x confidence bin) is its ``n_h`` items with the smallest ``u``. Because the
"k smallest keys" of a union is the k smallest of the per-part k smallest, each block keeps
only ``cap`` candidates per stratum and partial states merge associatively — the driver
never sees more than strata x cap rows, and the result does not depend on how the data was
split into blocks or in which order blocks finished.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

Rows = pa.Table | dict[str, Any]


def hash01(item_ids: Sequence[str] | np.ndarray, seed: int) -> np.ndarray:
    """Uniform [0, 1) keys from blake2b(item_id, key=seed): stable across processes/platforms.

    The top 53 bits of the first 8 digest bytes are used so the float64 is exact and can
    never round up to 1.0.
    """
    key = str(int(seed)).encode()
    digests = b"".join(
        hashlib.blake2b(str(i).encode(), digest_size=8, key=key).digest() for i in item_ids
    )
    words = np.frombuffer(digests, dtype=">u8").astype(np.uint64)
    return (words >> np.uint64(11)).astype(np.float64) * 2.0**-53


def confidence_bins(confidence: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Bin index of each confidence for bins [e_i, e_i+1); values at/above the top edge (1.0)
    land in the last bin and values below the first edge in bin 0.

    Values and edges are compared at float32 precision — the precision of the stored
    ``confidence`` column — so binning in-memory float64 scores and re-reading them from
    Parquet always agree (float32(0.9) lands in the bin starting at 0.9).
    """
    e = np.asarray(edges, dtype=np.float32)
    if e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0):
        raise ValueError(f"edges must be >= 2 strictly increasing values, got {list(edges)}")
    c = np.asarray(confidence, dtype=np.float32)
    idx = np.searchsorted(e, c, side="right") - 1
    return np.clip(idx, 0, e.size - 2).astype(np.int64)


def _fmt_edge(x: float) -> str:
    """At least two decimals, more only when needed, so distinct edges give distinct keys."""
    s = f"{x:.6f}".rstrip("0")
    whole, _, frac = s.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def stratum_key(label: str, bin_index: int, edges: Sequence[float]) -> str:
    """Human-readable stratum id, e.g. ``"circle|0.90-0.95"`` (label | bin range)."""
    return f"{label}|{_fmt_edge(edges[bin_index])}-{_fmt_edge(edges[bin_index + 1])}"


def stratum_bin_midpoint(stratum: str) -> float:
    """Mid-point of the confidence bin encoded in a stratum key (the label may contain '|')."""
    lo, _, hi = stratum.rsplit("|", 1)[1].partition("-")
    return (float(lo) + float(hi)) / 2.0


def neyman_error_weights(strata: Iterable[str]) -> dict[str, float]:
    """Per-stratum sqrt(p(1-p)) with p = bin mid-point: the expected-accuracy std dev used by
    ``allocate(method="error_weighted")``, so low-confidence strata get more reviews."""
    out = {}
    for s in strata:
        p = stratum_bin_midpoint(s)
        out[s] = math.sqrt(max(p * (1.0 - p), 0.0))
    return out


def _as_columns(rows: Rows) -> tuple[pa.Table, int]:
    """Rows as a pyarrow Table (dicts of arrays are wrapped without copying numeric data)."""
    table = rows if isinstance(rows, pa.Table) else pa.table(rows)
    return table, table.num_rows


def _strata_codes(
    labels: pa.ChunkedArray, bins: np.ndarray, n_bins: int
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Dense stratum codes: (label dictionary, code per row, unique codes present).

    Dictionary-encoding in Arrow avoids materialising millions of Python strings.
    """
    if labels.null_count:
        raise ValueError(f"label column has {labels.null_count} null value(s)")
    if not pa.types.is_string(labels.type):
        labels = labels.cast(pa.string())
    enc = labels.combine_chunks().dictionary_encode()
    code = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64) * n_bins + bins
    return [str(x) for x in enc.dictionary.to_pylist()], code, np.unique(code)


def _row_key(row: dict) -> tuple[float, str]:
    """Total order of candidates: by u, ties (≈ n²/2^54 chance) broken by item_id."""
    return (row["u"], str(row["item_id"]))


@dataclass
class SampleState:
    """Mergeable partial review-sample state: population per stratum + its ``cap`` smallest-u rows.

    ``edges`` and ``seed`` are recorded on the first ``add`` so that states built with
    different binning or seeds are refused at merge time instead of silently mixed.
    Plain data (``to_json``/``from_json``) so it can travel between Ray tasks; row values are
    whatever ``pyarrow.Table.to_pylist`` gives (pick JSON-friendly ``columns`` if you need
    ``json.dumps``).
    """

    cap: int
    populations: dict[str, int] = field(default_factory=dict)
    candidates: dict[str, list[dict]] = field(default_factory=dict)
    edges: list[float] | None = None
    seed: int | None = None

    def _check_params(self, edges: Sequence[float] | None, seed: int | None) -> None:
        """Adopt edges/seed on first use; refuse a mismatch later."""
        if edges is not None:
            e = [float(x) for x in edges]
            if self.edges is None:
                self.edges = e
            elif self.edges != e:
                raise ValueError(f"confidence edges differ: {self.edges} vs {e}")
        if seed is not None:
            if self.seed is None:
                self.seed = int(seed)
            elif self.seed != int(seed):
                raise ValueError(f"sample seeds differ: {self.seed} vs {seed}")

    def add(
        self,
        rows: Rows,
        edges: Sequence[float],
        seed: int,
        label_col: str = "label",
        conf_col: str = "confidence",
        id_col: str = "item_id",
        columns: Sequence[str] | None = None,
    ) -> None:
        """Fold one block in: count per stratum, keep each stratum's ``cap`` smallest u.

        Pass-through columns are ``columns`` (default: all columns of ``rows``); each kept
        row also gets ``item_id`` and ``u`` (an input column named ``u`` is overwritten).
        Work is vectorised; only the kept rows are converted to Python objects.
        """
        self._check_params(edges, seed)
        table, n = _as_columns(rows)
        if n == 0:
            return
        ids = table.column(id_col).to_pylist()
        u = hash01(ids, seed)
        n_bins = len(edges) - 1
        bins = confidence_bins(table.column(conf_col).to_numpy(zero_copy_only=False), edges)
        uniq_labels, code, present = _strata_codes(table.column(label_col), bins, n_bins)

        order = np.lexsort((u, code))
        sorted_code = code[order]
        starts = np.searchsorted(sorted_code, present, side="left")
        counts = np.searchsorted(sorted_code, present, side="right") - starts
        rank = np.arange(n) - np.repeat(starts, counts)
        kept = order[rank < self.cap]
        kept_code = code[kept]

        cols = list(table.column_names if columns is None else columns)
        if id_col not in cols:
            cols.append(id_col)
        kept_rows = table.select(cols).take(pa.array(kept)).to_pylist()
        for row, ui in zip(kept_rows, u[kept].tolist(), strict=True):
            row["u"] = ui
            if id_col != "item_id":
                row["item_id"] = row[id_col]

        keys = {
            c: stratum_key(uniq_labels[c // n_bins], c % n_bins, edges) for c in present.tolist()
        }
        block_cands: dict[str, list[dict]] = {}
        for c, row in zip(kept_code.tolist(), kept_rows, strict=True):
            block_cands.setdefault(keys[c], []).append(row)
        for c, cnt in zip(present.tolist(), counts.tolist(), strict=True):
            key = keys[c]
            self.populations[key] = self.populations.get(key, 0) + int(cnt)
            mine = self.candidates.get(key, [])
            self.candidates[key] = _merge_rows(mine, block_cands.get(key, []), self.cap)

    def merge(self, other: SampleState) -> SampleState:
        """A new state equal to having added both inputs' rows to one state (order-free)."""
        if self.cap != other.cap:
            raise ValueError(f"cannot merge states with different caps: {self.cap} vs {other.cap}")
        out = SampleState(cap=self.cap, edges=self.edges, seed=self.seed)
        out._check_params(other.edges, other.seed)
        for key in sorted(set(self.populations) | set(other.populations)):
            out.populations[key] = self.populations.get(key, 0) + other.populations.get(key, 0)
            out.candidates[key] = _merge_rows(
                self.candidates.get(key, []), other.candidates.get(key, []), self.cap
            )
        return out

    def to_json(self) -> dict:
        """Plain-data form (for Ray object transfer or a checkpoint file)."""
        return {
            "cap": self.cap,
            "edges": self.edges,
            "seed": self.seed,
            "populations": dict(self.populations),
            "candidates": {k: [dict(r) for r in v] for k, v in self.candidates.items()},
        }

    @classmethod
    def from_json(cls, d: dict) -> SampleState:
        """Inverse of :meth:`to_json`."""
        return cls(
            cap=int(d["cap"]),
            populations={k: int(v) for k, v in d["populations"].items()},
            candidates={k: [dict(r) for r in v] for k, v in d["candidates"].items()},
            edges=None if d.get("edges") is None else [float(x) for x in d["edges"]],
            seed=None if d.get("seed") is None else int(d["seed"]),
        )


def _merge_rows(a: list[dict], b: list[dict], cap: int) -> list[dict]:
    """The ``cap`` smallest of two candidate lists, in (u, item_id) order."""
    if not b:
        return a[:cap] if len(a) > cap else a
    return list(heapq.merge(sorted(a, key=_row_key), sorted(b, key=_row_key), key=_row_key))[:cap]


def allocate(
    populations: dict[str, int],
    size: int,
    method: str = "proportional",
    min_per_stratum: int = 1,
    error_weights: dict[str, float] | None = None,
) -> dict[str, int]:
    """Sample size per stratum.

    Methods: ``proportional`` (n_h ∝ N_h), ``equal`` (same n_h everywhere) and
    ``error_weighted`` (Neyman-like, n_h ∝ N_h * error_weights[h], e.g. sqrt(p(1-p)) from
    :func:`neyman_error_weights`, which favours low-confidence strata). Every non-empty
    stratum gets at least ``min(min_per_stratum, N_h)``, no stratum more than N_h. The total
    is ``min(size, sum N_h)`` — unless the minimums alone exceed it, in which case the
    minimums are returned (total = sum of minimums > size). ``size <= 0`` gives all zeros.
    The continuous allocation is water-filled under these bounds and rounded by largest
    remainder; ties go to the larger weight, then the smaller stratum key (deterministic).
    """
    keys = sorted(populations)
    pop = np.array([max(int(populations[k]), 0) for k in keys], dtype=np.float64)
    out = dict.fromkeys(keys, 0)
    total = int(min(max(size, 0), pop.sum()))
    if total == 0:
        return out
    w = _allocation_weights(keys, pop, method, error_weights)

    lo = np.minimum(float(max(min_per_stratum, 0)), pop)
    if lo.sum() >= total:
        return {k: int(v) for k, v in zip(keys, lo, strict=True)}
    # Zero weights would leave capacity unreachable; give them a vanishing share instead.
    pos = w[(w > 0) & (pop > 0)]
    floor_w = (pos.max() if pos.size else 1.0) * 1e-9
    w = np.where(pop > 0, np.maximum(w, floor_w), 0.0)

    def filled(lam: float) -> np.ndarray:
        """Continuous allocation for multiplier lam, clipped to [minimum, population]."""
        return np.clip(lam * w, lo, pop)

    hi_lam = float(np.max(pop[w > 0] / w[w > 0])) * 2.0
    lo_lam = 0.0
    for _ in range(200):
        mid = (lo_lam + hi_lam) / 2.0
        if filled(mid).sum() < total:
            lo_lam = mid
        else:
            hi_lam = mid
    n = _round_largest_remainder(filled(hi_lam), w, lo, pop, keys, total)
    return {k: int(v) for k, v in zip(keys, n, strict=True)}


def _allocation_weights(
    keys: list[str], pop: np.ndarray, method: str, error_weights: dict[str, float] | None
) -> np.ndarray:
    """Relative stratum weights of an allocation method (before the bounds)."""
    if method == "proportional":
        return pop.copy()
    if method == "equal":
        return (pop > 0).astype(np.float64)
    if method == "error_weighted":
        if error_weights is None:
            raise ValueError(
                "method 'error_weighted' needs error_weights (see neyman_error_weights)"
            )
        missing = [k for k, p in zip(keys, pop, strict=True) if p > 0 and k not in error_weights]
        if missing:
            raise ValueError(f"error_weights has no entry for stratum {missing[0]!r}")
        return pop * np.array([max(float(error_weights.get(k, 0.0)), 0.0) for k in keys])
    raise ValueError(f"unknown allocation method {method!r}")


def _round_largest_remainder(
    x: np.ndarray, w: np.ndarray, lo: np.ndarray, pop: np.ndarray, keys: list[str], total: int
) -> np.ndarray:
    """Integer sizes summing to ``total``: floors, then +1 by largest remainder (ties: larger
    weight, then smaller key), never above the population nor below the minimum."""
    n = np.minimum(np.floor(x + 1e-9), pop)
    short = int(total - n.sum())
    order = sorted(range(len(keys)), key=lambda i: (-(x[i] - n[i]), -w[i], keys[i]))
    while short > 0:
        progressed = False
        for i in order:
            if short == 0:
                break
            if n[i] < pop[i]:
                n[i] += 1
                short -= 1
                progressed = True
        if not progressed:
            break
    while short < 0:  # only reachable through float slop; take back from the smallest remainders
        for i in reversed(order):
            if short == 0:
                break
            if n[i] > lo[i]:
                n[i] -= 1
                short += 1
    return n


_TRUST_FIELDS = (
    ("stratum", pa.string()),
    ("stratum_population", pa.int64()),
    ("stratum_sample_size", pa.int64()),
    ("inclusion_prob", pa.float64()),
    ("weight", pa.float64()),
    ("u", pa.float64()),
)


def draw_sample(state: SampleState, allocation: dict[str, int]) -> pa.Table:
    """The final review sample: per stratum the n_h smallest-u candidates, with design columns.

    Adds ``stratum``, ``stratum_population`` (N_h), ``stratum_sample_size`` (n_h),
    ``inclusion_prob`` (n_h/N_h), ``weight`` (N_h/n_h, so a stratum's weights sum to N_h)
    and ``u``; ordered by stratum then u. n_h is clipped to N_h; asking for more than the
    state's ``cap`` candidates raises, since the weights would then be wrong.
    """
    out_rows: list[dict] = []
    for key in sorted(allocation):
        want = int(allocation[key])
        pop_h = int(state.populations.get(key, 0))
        n_h = min(want, pop_h)
        if n_h <= 0:
            continue
        cands = state.candidates.get(key, [])
        if len(cands) < n_h:
            raise ValueError(
                f"stratum {key!r} needs {n_h} rows but the state kept only {len(cands)} "
                f"(cap={state.cap}); rebuild with a larger cap"
            )
        for row in sorted(cands, key=_row_key)[:n_h]:
            r = dict(row)
            r["stratum"] = key
            r["stratum_population"] = pop_h
            r["stratum_sample_size"] = n_h
            r["inclusion_prob"] = n_h / pop_h
            r["weight"] = pop_h / n_h
            out_rows.append(r)
    if not out_rows:
        return pa.schema([("item_id", pa.string()), *_TRUST_FIELDS]).empty_table()
    table = pa.Table.from_pylist(out_rows)
    for name, typ in _TRUST_FIELDS:
        idx = table.schema.get_field_index(name)
        table = table.set_column(idx, name, table.column(name).cast(typ))
    return table


def _block_lowest(
    table: pa.Table, column: str, k: int, seed: int, id_col: str, cols: list[str]
) -> list[dict]:
    """Rows of one block that can be among the k lowest: value <= the block's k-th value."""
    vals = table.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
    vals = np.where(np.isnan(vals), np.inf, vals)
    if vals.size > k:
        kth = np.partition(vals, k - 1)[k - 1]
        idx = np.flatnonzero(vals <= kth)  # ties at the boundary all kept; u decides below
    else:
        idx = np.arange(vals.size)
    rows = table.select(cols).take(pa.array(idx)).to_pylist()
    u = hash01([r[id_col] for r in rows], seed)
    for r, v, ui in zip(rows, vals[idx].tolist(), u.tolist(), strict=True):
        r["u"] = ui
        r["_value"] = v
        r["item_id"] = r[id_col]
    return rows


def _lowest_key(row: dict) -> tuple[float, float, str]:
    """Order for LowestK: by value, then u, then item_id."""
    return (row["_value"], row["u"], str(row["item_id"]))


@dataclass
class LowestK:
    """Mergeable "k most uncertain items" list: the k rows with the smallest ``column``.

    Ties are broken by ``u = hash01(item_id, seed)`` then item_id, so the result is the same
    however the data was split into blocks.
    """

    k: int
    column: str = "confidence"
    seed: int = 0
    id_col: str = "item_id"
    rows: list[dict] = field(default_factory=list)

    def add(self, rows: Rows, columns: Sequence[str] | None = None) -> None:
        """Fold one block in, keeping only the current k lowest."""
        table, n = _as_columns(rows)
        if n == 0 or self.k <= 0:
            return
        cols = list(table.column_names if columns is None else columns)
        for c in (self.id_col, self.column):
            if c not in cols:
                cols.append(c)
        block = _block_lowest(table, self.column, self.k, self.seed, self.id_col, cols)
        self.rows = sorted(self.rows + block, key=_lowest_key)[: self.k]

    def merge(self, other: LowestK) -> LowestK:
        """A new state holding the k lowest of both."""
        if (self.k, self.column, self.seed) != (other.k, other.column, other.seed):
            raise ValueError("cannot merge LowestK states with different k, column or seed")
        rows = sorted(self.rows + other.rows, key=_lowest_key)[: self.k]
        return LowestK(k=self.k, column=self.column, seed=self.seed, id_col=self.id_col, rows=rows)

    def to_table(self) -> pa.Table:
        """The kept rows, lowest first, with ``u`` (helper column ``_value`` dropped)."""
        rows = [{k: v for k, v in r.items() if k != "_value"} for r in self.rows]
        if not rows:
            return pa.schema([("item_id", pa.string()), ("u", pa.float64())]).empty_table()
        return pa.Table.from_pylist(rows)

    def to_json(self) -> dict:
        """Plain-data form."""
        return {
            "k": self.k,
            "column": self.column,
            "seed": self.seed,
            "id_col": self.id_col,
            "rows": [dict(r) for r in self.rows],
        }

    @classmethod
    def from_json(cls, d: dict) -> LowestK:
        """Inverse of :meth:`to_json`."""
        return cls(
            k=int(d["k"]),
            column=str(d["column"]),
            seed=int(d["seed"]),
            id_col=str(d.get("id_col", "item_id")),
            rows=[dict(r) for r in d["rows"]],
        )
