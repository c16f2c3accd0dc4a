"""Tests for raylabel.estimate: known answers and simulated coverage of the intervals."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest

from raylabel.stats import estimate as est
from raylabel.stats import sampling as s

EDGES = [0.5, 0.7, 0.9, 0.97, 1.0]
CLASSES = ["cat", "dog", "fox"]


def test_stratified_proportion_known_answer() -> None:
    pops = {"a|0.50-0.70": 100, "a|0.90-1.00": 300}
    e = est.stratified_proportion(pops, {"a|0.50-0.70": (10, 9), "a|0.90-1.00": (10, 10)})
    assert e.point == pytest.approx(0.25 * 0.9 + 0.75 * 1.0)
    assert e.lower < e.point <= e.upper <= 1.0
    assert e.n_reviewed == 20
    assert e.population == 400
    assert e.method == est.METHOD
    assert e.uncovered_population == 0
    # Even with zero errors in the big stratum, the interval keeps real width.
    assert e.lower < 0.93
    perfect = est.stratified_proportion(pops, {"a|0.50-0.70": (10, 10), "a|0.90-1.00": (10, 10)})
    assert perfect.point == 1.0 and perfect.upper == 1.0
    assert 0.7 < perfect.lower < 0.95
    census = est.stratified_proportion(pops, {"a|0.50-0.70": (100, 80), "a|0.90-1.00": (300, 297)})
    assert census.lower == census.upper == census.point == pytest.approx((80 + 297) / 400)


def test_stratified_proportion_uncovered_and_errors() -> None:
    pops = {"a": 100, "b": 50, "c": 0}
    e = est.stratified_proportion(pops, {"a": (20, 15)})
    assert e.point == pytest.approx(0.75)
    assert e.population == 100
    assert e.uncovered_population == 50
    assert e.uncovered_strata == ["b"]
    empty = est.stratified_proportion(pops, {})
    assert math.isnan(empty.point) and empty.lower == 0.0 and empty.upper == 1.0
    assert json.loads(json.dumps(empty.to_json()))["point"] is None
    with pytest.raises(ValueError, match="'z'"):
        est.stratified_proportion(pops, {"z": (1, 1)})
    with pytest.raises(ValueError, match="'a'"):
        est.stratified_proportion(pops, {"a": (5, 6)})


def _sample_table(
    strata: list[str],
    pops: dict[str, int],
    labels: list[str],
    truth: list[str | None],
    accepted: list[bool],
    conf: list[float] | None = None,
) -> pa.Table:
    """A reviewed sample as the sample stage writes it (weights from reviewed counts)."""
    n_h = {k: strata.count(k) for k in set(strata)}
    cols = {
        "stratum": strata,
        "stratum_population": [pops[k] for k in strata],
        "weight": [pops[k] / n_h[k] for k in strata],
        "accepted": accepted,
        "label": labels,
        "true_label": pa.array(truth, pa.string()),
    }
    if conf is not None:
        cols["confidence"] = conf
    return pa.table(cols)


def test_estimate_from_reviews_matches_stratified_proportion() -> None:
    pops = {"cat|0.50-0.70": 400, "cat|0.90-0.97": 1000, "dog|0.90-0.97": 600}
    strata = ["cat|0.50-0.70"] * 4 + ["cat|0.90-0.97"] * 5 + ["dog|0.90-0.97"] * 3
    labels = ["cat"] * 9 + ["dog"] * 3
    truth = ["cat", "dog", "cat", None, "cat", "cat", "cat", "cat", "fox", "dog", "dog", "dog"]
    accepted = [False] * 4 + [True] * 5 + [True, False, True]
    out = est.estimate_from_reviews(_sample_table(strata, pops, labels, truth, accepted))
    ref = est.stratified_proportion(
        pops, {"cat|0.50-0.70": (3, 2), "cat|0.90-0.97": (5, 4), "dog|0.90-0.97": (3, 3)}
    )
    assert out["overall"].point == pytest.approx(ref.point)
    assert out["overall"].lower == pytest.approx(ref.lower)
    assert out["overall"].upper == pytest.approx(ref.upper)
    assert out["overall"].n_reviewed == 11
    # accepted: cat|0.90-0.97 all rows (4/5), dog|0.90-0.97 two of three rows (2/2)
    acc = out["accepted"]
    w_cat, w_dog = 1000 / 5, 600 / 3
    assert acc.point == pytest.approx((w_cat * 4 + w_dog * 2) / (w_cat * 5 + w_dog * 2))
    assert acc.population == round(w_cat * 5 + w_dog * 2)
    assert acc.n_reviewed == 7
    pc = out["per_class"]
    assert set(pc) == {"cat", "dog"}
    assert pc["cat"].point == pytest.approx((400 * 2 / 3 + 1000 * 4 / 5) / 1400)
    assert pc["dog"].point == 1.0 and pc["dog"].population == 600
    with_classes = est.estimate_from_reviews(
        _sample_table(strata, pops, labels, truth, accepted),
        classes=CLASSES,
        populations={**pops, "fox|0.90-0.97": 50},
    )
    assert with_classes["per_class"]["fox"].n_reviewed == 0
    assert with_classes["per_class"]["fox"].uncovered_population == 50
    assert with_classes["overall"].uncovered_strata == ["fox|0.90-0.97"]
    json.dumps({k: v.to_json() for k, v in with_classes["per_class"].items()})


def _population(seed: int) -> dict[str, np.ndarray]:
    """20k items in 12 strata (3 classes x 4 bins), accuracies from 0.55 to 0.995."""
    rng = np.random.default_rng(seed)
    sizes = np.array([800, 1500, 3000, 2500, 300, 900, 2000, 3500, 200, 700, 1900, 2800])
    acc = np.array([0.6, 0.8, 0.93, 0.99, 0.7, 0.85, 0.97, 0.995, 0.55, 0.75, 0.95, 0.99])
    h = np.repeat(np.arange(12), sizes)
    cls, b = h // 4, h % 4
    e = np.asarray(EDGES)
    conf = e[b] + rng.random(h.size) * (e[b + 1] - e[b])
    correct = rng.random(h.size) < acc[h]
    truth = np.where(correct, cls, (cls + rng.integers(1, 3, h.size)) % 3)
    accepted = conf >= np.array([0.8, 0.93, 0.96])[cls]  # thresholds inside bins
    keys = np.array([s.stratum_key(CLASSES[c], k, EDGES) for c in range(3) for k in range(4)])
    return {"h": h, "key": keys, "cls": cls, "truth": truth, "acc": accepted, "ok": correct}


@pytest.mark.parametrize("method", ["proportional", "error_weighted"])
def test_interval_coverage_on_simulated_population(method: str) -> None:
    pop = _population(seed=1)
    h, keys = pop["h"], pop["key"]
    sizes = np.bincount(h)
    pops = {str(k): int(n) for k, n in zip(keys, sizes, strict=True)}
    weights = s.neyman_error_weights(pops) if method == "error_weighted" else None
    alloc = s.allocate(pops, 300, method=method, min_per_stratum=2, error_weights=weights)
    n_h = np.array([alloc[str(k)] for k in keys])
    truth = {
        "overall": pop["ok"].mean(),
        "accepted": pop["ok"][pop["acc"]].mean(),
        **{c: pop["ok"][pop["cls"] == i].mean() for i, c in enumerate(CLASSES)},
    }
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rng = np.random.default_rng(2024)
    reps = 200
    hits = dict.fromkeys(truth, 0)
    for _ in range(reps):
        order = np.lexsort((rng.random(h.size), h))  # a fresh SRS inside every stratum
        rank = np.arange(h.size) - starts[h[order]]
        idx = order[rank < n_h[h[order]]]
        sample = pa.table(
            {
                "stratum": keys[h[idx]],
                "stratum_population": sizes[h[idx]],
                "weight": (sizes / n_h)[h[idx]],
                "accepted": pop["acc"][idx],
                "label": np.array(CLASSES)[pop["cls"][idx]],
                "true_label": np.array(CLASSES)[pop["truth"][idx]],
            }
        )
        out = est.estimate_from_reviews(sample)
        got = {"overall": out["overall"], "accepted": out["accepted"], **out["per_class"]}
        for name, e in got.items():
            hits[name] += e.lower <= truth[name] <= e.upper
    coverage = {k: v / reps for k, v in hits.items()}
    assert coverage["overall"] >= 0.90, coverage
    assert coverage["accepted"] >= 0.90, coverage
    assert min(coverage.values()) >= 0.88, coverage


def test_calibration_flags() -> None:
    rng = np.random.default_rng(0)
    pops = {"cat|0.90-0.97": 5000, "dog|0.50-0.70": 2000}
    n = 60
    strata = ["cat|0.90-0.97"] * n + ["dog|0.50-0.70"] * n
    conf = list(rng.uniform(0.9, 0.97, n)) + list(rng.uniform(0.5, 0.7, n))
    # cat: claims ~0.93, is right half the time; dog: claims ~0.6, is right 36/60 = 0.6
    cat_truth = ["cat"] * 30 + ["dog"] * 30
    dog_truth = ["dog"] * 36 + ["fox"] * 24
    table = _sample_table(
        strata,
        pops,
        ["cat"] * n + ["dog"] * n,
        cat_truth + dog_truth,
        [True] * n + [False] * n,
        conf=conf,
    )
    flags = est.calibration_flags(table)
    assert [f["stratum"] for f in flags] == ["cat|0.90-0.97"]
    f = flags[0]
    assert f["direction"] == "overconfident"
    assert f["accuracy"] == pytest.approx(0.5)
    assert f["upper"] < f["mean_confidence"]
    assert f["n_reviewed"] == n
    json.dumps(flags)
