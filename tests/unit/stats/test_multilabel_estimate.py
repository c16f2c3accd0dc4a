"""Issue #18: stratified estimates of a reviewed multilabel sample (known answers, intervals)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from raylabel.stats.estimate import stratified_proportion
from raylabel.stats.multilabel_estimate import multilabel_estimates, ratio_estimate

CLASSES = ["cat", "dog"]


def _sample(rows: list[tuple[str, int, list[str], list[str], list[str] | None]]) -> pa.Table:
    """(stratum, N_h, predicted, undecided, reviewed set) rows; accepted = no undecided."""
    return pa.table({
        "item_id": [f"i{i}" for i in range(len(rows))],
        "stratum": [r[0] for r in rows],
        "stratum_population": [r[1] for r in rows],
        "labels": pa.array([r[2] for r in rows], pa.list_(pa.string())),
        "undecided_labels": pa.array([r[3] for r in rows], pa.list_(pa.string())),
        "accepted": [not r[3] for r in rows],
        "true_labels": pa.array([r[4] for r in rows], pa.list_(pa.string())),
    })  # fmt: skip


def _known() -> pa.Table:
    a, r = "acc/u0|0.00-0.05", "rev/u1|0.00-0.05"
    return _sample([
        (a, 100, ["cat"], [], ["cat"]),            # exact
        (a, 100, ["cat", "dog"], [], ["cat"]),     # one false positive
        (a, 100, [], [], ["dog"]),                 # one missed
        (a, 100, ["dog"], [], None),               # not reviewed
        (r, 50, ["cat"], ["dog"], ["cat", "dog"]),  # reviewer added the undecided dog
        (r, 50, [], ["dog"], []),                  # ... and here not
    ])  # fmt: skip


def test_known_answers() -> None:
    est = multilabel_estimates(_known(), CLASSES, populations={"acc/u0|0.05-0.10": 7})
    assert est["exact_accepted"].point == pytest.approx(1 / 3)
    # all rows: stratum a weighs 100/3 per review, stratum r 50/2 = 25; exact: 1 + 1 (the 2nd r)
    assert est["exact_all"].point == pytest.approx((100 / 3 + 25) / (100 + 50))
    assert est["exact_all"].population == 150
    assert est["micro_precision"].point == pytest.approx(2 / 3)  # tp 2 of 3 predicted
    assert est["micro_recall"].point == pytest.approx(2 / 3)  # tp 2 of 3 true
    assert est["precision"]["cat"].point == 1.0 and est["precision"]["dog"].point == 0.0
    assert est["recall"]["cat"].point == 1.0 and est["recall"]["dog"].point == 0.0
    assert est["undecided_added"]["dog"].point == pytest.approx(0.5)
    assert math.isnan(est["undecided_added"]["cat"].point)  # never undecided
    assert est["exact_accepted"].uncovered_strata == ["acc/u0|0.05-0.10"]
    assert est["exact_accepted"].uncovered_population == 7
    for e in (est["exact_all"], est["micro_precision"], est["undecided_added"]["dog"]):
        assert 0.0 <= e.lower <= e.point <= e.upper <= 1.0 and e.upper - e.lower > 0.1


def test_census_has_no_sampling_error() -> None:
    t = _sample([("acc/u0|0.00-0.05", 2, ["cat"], [], ["cat"]),
                 ("acc/u0|0.00-0.05", 2, ["cat"], [], ["dog"])])  # fmt: skip
    e = multilabel_estimates(t, CLASSES)["exact_all"]
    assert (e.point, e.lower, e.upper) == (0.5, 0.5, 0.5) and e.n_effective == math.inf


def test_binary_outcomes_match_the_multiclass_estimator() -> None:
    rng = np.random.default_rng(0)
    pops = [400, 900, 150]
    n = [30, 25, 12]
    code = np.repeat(np.arange(3), n)
    y = (rng.random(code.size) < np.array([0.95, 0.8, 0.5])[code]).astype(float)
    mine = ratio_estimate(code, y, np.ones_like(y), pops, 0.9)
    ref = stratified_proportion(
        {str(h): pops[h] for h in range(3)},
        {str(h): (n[h], int(y[code == h].sum())) for h in range(3)},
        0.9,
    )
    assert (mine.point, mine.lower, mine.upper) == pytest.approx((ref.point, ref.lower, ref.upper))


def test_micro_precision_interval_covers() -> None:
    """Several decisions per row: the linearised variance must still cover ~95%."""
    rng = np.random.default_rng(1)
    pops, n = np.array([3000, 1000]), np.array([40, 40])
    # per item: predicted positives 1-3, each correct w.p. depending on stratum and a row effect
    z_pop = [rng.integers(1, 4, size=N) for N in pops]
    y_pop = [rng.binomial(z, np.clip(p + rng.normal(0, 0.15, z.size), 0, 1))
             for z, p in zip(z_pop, (0.9, 0.6), strict=True)]  # fmt: skip
    truth = sum(y.sum() for y in y_pop) / sum(z.sum() for z in z_pop)
    hits = 0
    reps = 300
    for _ in range(reps):
        idx = [rng.choice(N, size=k, replace=False) for N, k in zip(pops, n, strict=True)]
        y = np.concatenate([y_pop[h][idx[h]] for h in range(2)])
        z = np.concatenate([z_pop[h][idx[h]] for h in range(2)])
        e = ratio_estimate(np.repeat([0, 1], n), y, z, pops, 0.95)
        hits += e.lower <= truth <= e.upper
    assert hits / reps >= 0.91
