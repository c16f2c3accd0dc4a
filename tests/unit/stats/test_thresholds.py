"""The acceptance rule against a direct, loop-by-loop computation; weighted evidence;
explanations of weak classes (raylabel.thresholds, numpy/scipy only)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from thresholdutil import cp_lower as _cp_lower
from thresholdutil import cp_upper as _cp_upper
from thresholdutil import direct_rule

from raylabel.stats import thresholds as th


def _evidence(seed: int, counts: list[int], quality: list[float]) -> th.Evidence:
    """Per class c: counts[c] predictions with confidences on a 2-decimal grid (ties), each
    correct with probability quality[c] * confidence-ish."""
    rng = np.random.default_rng(seed)
    pred = np.concatenate([np.full(n, c) for c, n in enumerate(counts)]).astype(np.int64)
    conf = np.round(rng.uniform(0.5, 1.0, pred.size), 2)
    p_ok = np.clip(np.array(quality)[pred] * (0.55 + 0.45 * conf), 0, 1)
    correct = rng.random(pred.size) < p_ok
    return th.Evidence(pred, conf, correct, np.ones(pred.size))


@pytest.mark.parametrize("seed", range(6))
def test_rule_matches_direct_computation(seed: int) -> None:
    # a big good class, a big bad class, two thin ones and a class never predicted
    ev = _evidence(seed, [400, 300, 25, 12, 0], [1.02, 0.85, 1.0, 0.95, 1.0])
    names = ["a", "b", "c", "d", "e"]
    res = th.thresholds_from_evidence(ev, names, 0.9, 0.95, min_support=30)
    thr, src = direct_rule(ev.pred, ev.conf, ev.correct, 5, 0.9, 0.95, 30)
    assert [res.source[n] for n in names] == src
    assert [res.thresholds[n] for n in names] == pytest.approx(thr)
    back = th.ThresholdResult.from_json(json.loads(json.dumps(res.to_json())))
    assert back == res


def test_own_evidence_too_thin_falls_back_to_pooled_threshold() -> None:
    # 40 predictions per class, all correct at the top: no class can reach 0.95 alone
    # (40 of 40 gives a Clopper-Pearson bound of 0.928), but the 400 pooled items can.
    rng = np.random.default_rng(3)
    pred = np.repeat(np.arange(10), 40)
    conf = rng.uniform(0.6, 1.0, 400)
    correct = conf > 0.7
    ev = th.Evidence(pred, conf, correct, np.ones(400))
    names = [f"k{i}" for i in range(10)]
    res = th.thresholds_from_evidence(ev, names, 0.95, 0.95, min_support=30)
    assert set(res.source.values()) == {"global"}
    assert res.global_threshold < 0.75
    ex = res.explanations["k0"]
    assert ex["items"] == 40
    assert ex["best_lower_bound"] < 0.95
    assert ex["more_items_needed"] is not None and ex["more_items_needed"] > 0
    # with that many more all-correct-at-the-top items, the class reaches the target alone
    k0 = pred == 0
    scale = (40 + ex["more_items_needed"]) / 40
    n_top = ex["items_at_best_cut"]
    k_top = correct[k0 & (conf >= ex["best_cut"])].sum()
    assert _cp_lower(k_top * scale, n_top * scale, 0.95) >= 0.95 - 1e-6


def test_a_contradicted_class_accepts_nothing() -> None:
    rng = np.random.default_rng(0)
    good = np.zeros(600, dtype=np.int64)
    bad = np.ones(200, dtype=np.int64)
    pred = np.concatenate([good, bad])
    conf = rng.uniform(0.8, 1.0, 800)
    correct = np.concatenate([rng.random(600) < 0.995, rng.random(200) < 0.6])
    ev = th.Evidence(pred, conf, correct, np.ones(800))
    # min_support above both classes: both go to the pooled threshold unless contradicted
    res = th.thresholds_from_evidence(ev, ["good", "bad"], 0.85, 0.95, min_support=10_000)
    assert res.source == {"good": "global", "bad": "unreachable"}
    assert res.thresholds["bad"] == th.NEVER_ACCEPT


def test_a_class_with_no_support_gets_its_explanation() -> None:
    ev = _evidence(1, [300, 300, 0], [1.05, 1.05, 1.0])
    res = th.thresholds_from_evidence(ev, ["a", "b", "ghost"], 0.95, 0.95, min_support=30)
    ex = res.explanations["ghost"]
    assert ex["items"] == 0
    assert ex["more_items_needed"] == 59  # 59 of 59 correct is the first CP bound >= 0.95
    assert th.all_correct_items_needed(0.95, 0.95, "clopper_pearson") == 59
    lines = res.explanation_lines()
    line = next(x for x in lines if x.startswith("ghost:"))
    assert "no calibration item is predicted ghost" in line
    assert "about 59 more labeled or reviewed ghost items" in line


def test_bound_choices_order_and_point_is_the_estimate() -> None:
    assert th.precision_lower_bound(87, 100, 0.95, "point") == pytest.approx(0.87)
    cp = th.precision_lower_bound(87, 100, 0.95)
    wi = th.precision_lower_bound(87, 100, 0.95, "wilson")
    assert cp < wi < 0.87
    assert th.precision_upper_bound(87, 100, 0.95) == pytest.approx(_cp_upper(87, 100, 0.95))
    ev = _evidence(4, [500, 500], [1.0, 0.97])
    t = {m: th.thresholds_from_evidence(ev, ["a", "b"], 0.9, 0.95, 30, m) for m in th.BOUNDS}
    for name in ("a", "b"):
        assert (
            t["point"].thresholds[name]
            <= t["wilson"].thresholds[name]
            <= t["clopper_pearson"].thresholds[name]
        )
    with pytest.raises(ValueError):
        th.thresholds_from_evidence(ev, ["a", "b"], 0.9, 0.95, 30, "nope")


def test_weights_enter_through_the_effective_sample_size() -> None:
    ev = _evidence(7, [300, 300], [1.0, 1.0])
    names = ["a", "b"]
    plain = th.thresholds_from_evidence(ev, names, 0.9, 0.95, 30)
    # a constant weight changes nothing (effective n is n)
    scaled = th.Evidence(ev.pred, ev.conf, ev.correct, np.full(len(ev.pred), 7.5))
    assert th.thresholds_from_evidence(ev, names, 0.9, 0.95, 30).thresholds == plain.thresholds
    assert th.thresholds_from_evidence(scaled, names, 0.9, 0.95, 30).thresholds == pytest.approx(
        plain.thresholds
    )
    # unequal weights shrink the effective n: the bound can only get more cautious
    uneven = th.Evidence(
        ev.pred, ev.conf, ev.correct, np.where(np.arange(len(ev.pred)) % 2, 0.2, 1.8)
    )
    res = th.thresholds_from_evidence(uneven, names, 0.9, 0.95, 30)
    w = uneven.weight[uneven.pred == 0]
    n_eff = w.sum() ** 2 / (w * w).sum()
    assert res.explanations["a"]["effective_items"] == pytest.approx(n_eff, rel=1e-3)
    assert n_eff < 300


def test_review_weights_average_one_per_run() -> None:
    w = th.review_weights(np.array([10.0, 30.0, 2.0, 2.0, 8.0]), ["r1", "r1", "r2", "r2", "r2"])
    assert w[:2].mean() == pytest.approx(1.0)
    assert w[2:].mean() == pytest.approx(1.0)
    assert w[1] / w[0] == pytest.approx(3.0)
