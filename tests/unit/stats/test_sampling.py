"""Tests for raylabel.sampling: deterministic, mergeable stratified bottom-k review sampling."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow as pa
import pytest

from raylabel.stats import sampling as s

EDGES = [0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0]


def _population(n: int, seed: int = 0) -> pa.Table:
    """A labeled drop: skewed classes, confidence piled up near 1 like a real model's."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(["circle", "square", "triangle"], size=n, p=[0.5, 0.35, 0.15])
    conf = np.clip(rng.beta(6, 1.2, size=n), 0.34, 1.0)
    return pa.table(
        {
            "item_id": [f"item-{i:06d}" for i in range(n)],
            "uri": [f"s3://bucket/drop/{i}.png" for i in range(n)],
            "label": labels,
            "confidence": conf.astype(np.float32),
            "accepted": conf > 0.9,
        }
    )


def _blocks(table: pa.Table, sizes: list[int]) -> list[pa.Table]:
    """Consecutive slices of the given sizes plus the remainder."""
    out, start = [], 0
    for size in sizes:
        out.append(table.slice(start, size))
        start += size
    out.append(table.slice(start))
    return out


def test_hash01_stable_uniform_and_seeded() -> None:
    ids = [f"id{i}" for i in range(20000)]
    u = s.hash01(ids, seed=42)
    assert u.dtype == np.float64
    assert np.all((u >= 0) & (u < 1))
    np.testing.assert_array_equal(u, s.hash01(np.array(ids, dtype=object), seed=42))
    digest = hashlib.blake2b(b"id0", digest_size=8, key=b"42").digest()
    assert u[0] == (int.from_bytes(digest, "big") >> 11) / 2.0**53  # the documented recipe
    assert abs(u.mean() - 0.5) < 0.01
    assert np.histogram(u, bins=10, range=(0, 1))[0].min() > 1800
    assert not np.array_equal(u, s.hash01(ids, seed=43))
    assert s.hash01([], seed=1).shape == (0,)


def test_confidence_bins_and_keys() -> None:
    conf = np.array([0.0, 0.49, 0.5, 0.7, 0.949, 0.95, 0.999, 1.0])
    np.testing.assert_array_equal(s.confidence_bins(conf, EDGES), [0, 0, 1, 2, 4, 5, 5, 5])
    assert s.stratum_key("circle", 4, EDGES) == "circle|0.90-0.95"
    assert s.stratum_key("circle", 0, EDGES) == "circle|0.00-0.50"
    assert s.stratum_key("a|b", 1, [0.9, 0.975, 1.0]) == "a|b|0.975-1.00"
    assert s.stratum_bin_midpoint("a|b|0.975-1.00") == pytest.approx(0.9875)
    with pytest.raises(ValueError):
        s.confidence_bins(conf, [0.0, 0.5, 0.5, 1.0])
    # float64 scores and their float32 copies (as stored in Parquet) land in the same bins
    near = np.array([0.9, np.nextafter(0.9, 0), np.nextafter(0.9, 1), 0.95 - 1e-12, 0.7])
    np.testing.assert_array_equal(
        s.confidence_bins(near, EDGES), s.confidence_bins(near.astype(np.float32), EDGES)
    )
    assert s.confidence_bins(np.float32([0.9]), EDGES)[0] == 4


def _state(
    table: pa.Table, seed: int, cap: int = 40, blocks: list[int] | None = None
) -> s.SampleState:
    """One-shot state, or per-block states merged in a scrambled order."""
    if blocks is None:
        st = s.SampleState(cap=cap)
        st.add(table, EDGES, seed)
        return st
    parts = []
    for block in _blocks(table, blocks):
        st = s.SampleState(cap=cap)
        st.add(block, EDGES, seed)
        parts.append(st)
    # merge in a scrambled tree order: the result must not depend on it
    while len(parts) > 1:
        parts = [parts[-1].merge(parts[0]), *parts[1:-1]]
    return parts[0]


def test_blockwise_add_and_merge_equals_one_shot() -> None:
    table = _population(6000)
    one = _state(table, seed=7)
    split = _state(table, seed=7, blocks=[1000, 37, 2500, 900])
    assert split.populations == one.populations
    assert split.candidates == one.candidates
    assert sum(one.populations.values()) == table.num_rows
    # repeated add on one state equals merge
    inc = s.SampleState(cap=40)
    for block in _blocks(table, [3000]):
        inc.add(block, EDGES, 7)
    assert inc.candidates == one.candidates
    rt = s.SampleState.from_json(json.loads(json.dumps(one.to_json())))
    assert rt == one
    with pytest.raises(ValueError, match="seeds differ"):
        one.merge(_state(table.slice(0, 10), seed=8))


def test_sample_is_bottom_k_and_deterministic() -> None:
    table = _population(6000)
    st = _state(table, seed=7)
    alloc = s.allocate(st.populations, 150)
    sample = s.draw_sample(st, alloc)
    assert sample.num_rows == 150
    # brute force: per stratum, the n_h items with the smallest hash
    u = s.hash01(table.column("item_id").to_pylist(), 7)
    bins = s.confidence_bins(table.column("confidence").to_numpy(), EDGES)
    keys = np.array(
        [
            s.stratum_key(lab, b, EDGES)
            for lab, b in zip(table["label"].to_pylist(), bins.tolist(), strict=True)
        ]
    )
    ids = np.array(table.column("item_id").to_pylist())
    expected = set()
    for key, n_h in alloc.items():
        m = np.flatnonzero(keys == key)
        expected |= set(ids[m[np.argsort(u[m])[:n_h]]].tolist())
    assert set(sample.column("item_id").to_pylist()) == expected
    again = s.draw_sample(_state(table, seed=7, blocks=[123, 4000]), alloc)
    assert again.equals(sample)
    other = s.draw_sample(_state(table, seed=8), alloc)
    assert set(other.column("item_id").to_pylist()) != expected


def test_draw_sample_columns_weights_and_order() -> None:
    table = _population(3000)
    st = _state(table, seed=3)
    alloc = s.allocate(st.populations, 100, min_per_stratum=2)
    sample = s.draw_sample(st, alloc)
    for col in ("item_id", "uri", "label", "confidence", "accepted", "u"):
        assert col in sample.column_names
    assert sample.schema.field("stratum").type == pa.string()
    assert sample.schema.field("stratum_population").type == pa.int64()
    assert sample.schema.field("stratum_sample_size").type == pa.int64()
    assert sample.schema.field("inclusion_prob").type == pa.float64()
    assert sample.schema.field("weight").type == pa.float64()
    rows = sample.to_pylist()
    assert [(r["stratum"], r["u"]) for r in rows] == sorted((r["stratum"], r["u"]) for r in rows)
    totals: dict[str, float] = {}
    for r in rows:
        totals[r["stratum"]] = totals.get(r["stratum"], 0.0) + r["weight"]
        assert r["inclusion_prob"] == pytest.approx(
            r["stratum_sample_size"] / r["stratum_population"]
        )
        assert r["weight"] == pytest.approx(1.0 / r["inclusion_prob"])
    for key, total in totals.items():
        assert total == pytest.approx(st.populations[key])
    assert sum(totals.values()) == pytest.approx(table.num_rows)
    with pytest.raises(ValueError, match="cap"):
        s.draw_sample(st, {k: 41 for k in st.populations if st.populations[k] > 41})
    assert s.draw_sample(st, {}).num_rows == 0


POPS = {
    "a|0.00-0.50": 500,
    "a|0.90-1.00": 5000,
    "b|0.50-0.70": 40,
    "b|0.90-1.00": 2,
    "c|0.70-0.80": 0,
}


@pytest.mark.parametrize("method", ["proportional", "equal", "error_weighted"])
@pytest.mark.parametrize("size", [1, 5, 60, 600, 10**6])
def test_allocate_respects_size_minimums_and_populations(method: str, size: int) -> None:
    weights = s.neyman_error_weights(POPS) if method == "error_weighted" else None
    alloc = s.allocate(POPS, size, method=method, min_per_stratum=3, error_weights=weights)
    assert set(alloc) == set(POPS)
    total_pop = sum(POPS.values())
    for k, n in alloc.items():
        assert 0 <= n <= POPS[k]
        assert n >= min(3, POPS[k])
    minimums = sum(min(3, p) for p in POPS.values())
    assert sum(alloc.values()) == max(min(size, total_pop), minimums)
    assert alloc == s.allocate(POPS, size, method=method, min_per_stratum=3, error_weights=weights)


def test_allocate_known_answers() -> None:
    assert s.allocate({"a": 50, "b": 30, "c": 20}, 10) == {"a": 5, "b": 3, "c": 2}
    # largest remainder; exact ties broken by key
    assert s.allocate({"a": 1, "b": 1, "c": 1}, 2, min_per_stratum=0) == {"a": 1, "b": 1, "c": 0}
    assert s.allocate({"a": 100, "b": 100}, 0) == {"a": 0, "b": 0}
    assert s.allocate({"a": 1000, "b": 10}, 100, method="equal") == {"a": 90, "b": 10}
    # proportional with a minimum: the small stratum is lifted, the rest stays proportional
    alloc = s.allocate({"a": 9900, "b": 100}, 50, min_per_stratum=5)
    assert alloc == {"a": 45, "b": 5}
    with pytest.raises(ValueError):
        s.allocate({"a": 1}, 1, method="error_weighted")
    with pytest.raises(ValueError):
        s.allocate({"a": 1}, 1, method="bogus")


def test_error_weighted_favours_low_confidence_strata() -> None:
    pops = {"a|0.50-0.70": 2000, "a|0.90-0.95": 2000, "a|0.95-1.00": 2000}
    prop = s.allocate(pops, 300)
    ew = s.allocate(pops, 300, method="error_weighted", error_weights=s.neyman_error_weights(pops))
    assert sum(ew.values()) == 300
    assert ew["a|0.50-0.70"] > ew["a|0.90-0.95"] > ew["a|0.95-1.00"]
    assert ew["a|0.50-0.70"] > prop["a|0.50-0.70"]
    rate = {k: ew[k] / pops[k] for k in pops}
    assert rate["a|0.50-0.70"] > 2 * rate["a|0.95-1.00"]


def test_lowest_k_matches_brute_force_with_ties() -> None:
    rng = np.random.default_rng(4)
    n = 3000
    table = pa.table(
        {
            "item_id": [f"x{i}" for i in range(n)],
            "margin": np.round(rng.random(n), 2),  # many ties
            "label": rng.choice(["a", "b"], n),
        }
    )
    one = s.LowestK(k=25, column="margin", seed=5)
    one.add(table)
    parts = []
    for block in _blocks(table, [700, 1, 1200]):
        lk = s.LowestK(k=25, column="margin", seed=5)
        lk.add(block)
        parts.append(lk)
    merged = parts[3].merge(parts[1]).merge(parts[0].merge(parts[2]))
    assert merged.rows == one.rows
    u = s.hash01(table.column("item_id").to_pylist(), 5)
    order = np.lexsort((u, table.column("margin").to_numpy()))[:25]
    expected = [table.column("item_id")[int(i)].as_py() for i in order]
    out = one.to_table()
    assert out.column("item_id").to_pylist() == expected
    assert "_value" not in out.column_names
    assert s.LowestK.from_json(json.loads(json.dumps(one.to_json()))) == one
