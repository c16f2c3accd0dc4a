"""Multi-label calibration, the two-sided per-class thresholds and the decision rule
(raylabel.stats.multilabel, numpy/scipy only): known answers, a coverage simulation of
the bounds, sentinels and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from raylabel.models.card import ModelCard
from raylabel.stats import multilabel as ml
from raylabel.stats.thresholds import NEVER_ACCEPT, precision_lower_bound


def _planted(n: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True logits z and 0/1 targets drawn from sigmoid(z): T = 1 is right for z."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, size=(n, n_classes))
    return z, rng.random(z.shape) < ml.sigmoid(z)


def test_sigmoid_is_stable_and_per_column() -> None:
    z = np.array([[1000.0, -1000.0, 0.0], [2.0, -4.0, 6.0]])
    p = ml.sigmoid(z)
    assert p.dtype == np.float64 and np.all(np.isfinite(p))
    np.testing.assert_allclose(p[0], [1.0, 0.0, 0.5])
    np.testing.assert_allclose(p[1], 1.0 / (1.0 + np.exp(-z[1])))
    scaled = ml.sigmoid(z[1:], np.array([2.0, 4.0, 0.5]))
    np.testing.assert_allclose(scaled[0], ml.sigmoid(np.array([1.0, -1.0, 12.0])))
    for bad in (np.array([1.0, 2.0]), np.array([1.0, 0.0, 1.0]), np.array([1.0, np.nan, 1.0])):
        with pytest.raises(ValueError, match="temperatures"):
            ml.sigmoid(z, bad)


@pytest.mark.parametrize("t0", [3.0, 0.5])
def test_class_temperatures_recover_the_planted_scale(t0: float) -> None:
    z, y = _planted(6000, 3, seed=5)
    scale = np.array([t0, 1.0, 2.0 * t0])  # each class mis-scaled its own way
    t = ml.fit_class_temperatures(z * scale, y)
    assert t.shape == (3,)
    np.testing.assert_allclose(t, scale, rtol=0.10)
    before = ml.multilabel_ece(ml.sigmoid(z * scale), y)
    after = ml.multilabel_ece(ml.sigmoid(z * scale, t), y)
    assert after < before and after < 0.03


def test_temperature_of_a_one_sided_class_is_one_and_weights_count() -> None:
    z, y = _planted(3000, 3, seed=8)
    y[:, 1] = True  # only positives: nothing to learn its scale from
    y[:, 2] = False
    t = ml.fit_class_temperatures(3.0 * z, y)
    assert t[1] == 1.0 and t[2] == 1.0
    assert abs(t[0] - 3.0) < 0.3
    # tiny weights on the first half: the fit follows the (differently scaled) second half
    mixed = np.concatenate([z[:1500, :1] * 0.5, z[1500:, :1] * 3.0])
    w = np.concatenate([np.full(1500, 1e-6), np.ones(1500)])
    assert abs(ml.fit_class_temperatures(mixed, y[:, :1], w)[0] - 3.0) < 0.4
    assert ml.fit_class_temperatures(np.zeros((0, 2)), np.zeros((0, 2))).tolist() == [1.0, 1.0]


def test_multilabel_ece_pools_every_item_class_pair() -> None:
    probs = np.array([[0.9, 0.1], [0.9, 0.1]])
    targets = np.array([[1, 0], [0, 0]])
    # bin 0.9: conf 1.8 vs 1 hit (gap 0.8); bin 0.1: conf 0.2 vs 0 hits (gap 0.2); 4 pairs
    assert ml.multilabel_ece(probs, targets, n_bins=10) == pytest.approx(0.25)
    assert ml.multilabel_ece(np.zeros((0, 3)), np.zeros((0, 3))) == 0.0
    with pytest.raises(ValueError, match="n_bins"):
        ml.multilabel_ece(probs, targets, n_bins=0)


def _separated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes whose calibrated scores sit near 0 or 1 and are nearly always right."""
    rng = np.random.default_rng(seed)
    y = rng.random((n, 3)) < np.array([0.5, 0.2, 0.7])
    noise = rng.uniform(0.0, 0.15, y.shape)
    p = np.where(y, 1.0 - noise, noise)
    return p, y


def test_separated_data_decides_every_class_with_positive_above_negative() -> None:
    p, y = _separated(2000, seed=1)
    res = ml.choose_multilabel_thresholds(p, y, ["a", "b", "c"], 0.95)
    for c in res.classes:
        assert res.positive_source[c] == res.negative_source[c] == "class"
        assert res.positive[c] > res.negative[c]
        assert res.positive_bound[c] >= 0.95 and res.negative_bound[c] >= 0.95
    assert res.support["b"]["positives"] == int(y[:, 1].sum())
    assert res.support["b"]["negatives"] == int((~y[:, 1]).sum())
    assert res.explanation_lines() == []
    pos, undecided = ml.decide(p, *ml.thresholds_arrays(res))
    assert not undecided.any()
    assert (pos & y).sum() / pos.sum() >= 0.95  # precision of the positives
    assert (~pos & ~y).sum() / (~pos).sum() >= 0.95  # and of the negatives
    assert (pos & y).sum() / y.sum() > 0.95  # most present labels are found


def test_bound_reported_is_the_bound_at_the_cut() -> None:
    p, y = _separated(500, seed=2)
    p[:5, 0], y[:5, 0] = 0.9, False  # some confident misses: the cut must step over them
    res = ml.choose_multilabel_thresholds(p, y, ["a", "b", "c"], 0.9)
    t = res.positive["a"]
    assert res.positive_source["a"] == "class" and t <= 0.9
    sel = p[:, 0] >= t
    want = precision_lower_bound(int(y[sel, 0].sum()), int(sel.sum()), 0.95)
    assert res.positive_bound["a"] == pytest.approx(want)
    u = res.negative["a"]
    neg = p[:, 0] <= u
    assert u in set(p[:, 0].tolist())  # mapped back to a calibration score, not 1 - cut
    want = precision_lower_bound(int((~y[neg, 0]).sum()), int(neg.sum()), 0.95)
    assert res.negative_bound["a"] == pytest.approx(want)


def test_noisy_class_is_unreachable_on_the_side_that_cannot_meet_the_target() -> None:
    rng = np.random.default_rng(4)
    n = 1500
    p = rng.uniform(0.0, 1.0, (n, 2))
    y = np.zeros((n, 2), bool)
    y[:, 0] = rng.random(n) < p[:, 0]  # calibrated: both sides reachable at 0.9
    # class 1: present 70% of the time whatever the score: NPV <= 0.3, precision ~0.7
    y[:, 1] = rng.random(n) < 0.7
    res = ml.choose_multilabel_thresholds(p, y, ["good", "noisy"], 0.9)
    assert res.positive_source["good"] == res.negative_source["good"] == "class"
    assert res.positive_source["noisy"] == res.negative_source["noisy"] == "unreachable"
    assert res.positive["noisy"] == NEVER_ACCEPT and res.negative["noisy"] == ml.NEVER_NEGATIVE
    assert 0.5 < res.positive_bound["noisy"] < 0.9 and res.negative_bound["noisy"] < 0.4
    lines = res.explanation_lines()
    assert len(lines) == 1 and lines[0].startswith("noisy:")
    assert "positive side unreachable" in lines[0] and "negative side unreachable" in lines[0]
    assert f"{res.positive_bound['noisy']:.3f}" in lines[0]
    # a rare tag: absent is easy to call, present never reaches the target
    y[:, 1] = rng.random(n) < 0.03
    res = ml.choose_multilabel_thresholds(p, y, ["good", "rare"], 0.9)
    assert res.positive_source["rare"] == "unreachable"
    assert res.negative_source["rare"] == "class" and res.negative["rare"] >= 0.99
    (line,) = res.explanation_lines()
    assert "positive side unreachable" in line and "negative side" not in line


def test_overlapping_sides_keep_apart_and_the_negative_still_carries_its_bound() -> None:
    # calibrated uniform scores at target 0.6: {p >= t} carries it from t ~ 0.25 and
    # {p <= u} up to u ~ 0.75, so the sides cross; the positive side wins the middle
    rng = np.random.default_rng(6)
    p = rng.uniform(0.0, 1.0, (800, 1))
    y = rng.random(p.shape) < p
    res = ml.choose_multilabel_thresholds(p, y, ["x"], 0.6)
    t, u = res.positive["x"], res.negative["x"]
    assert res.positive_source["x"] == res.negative_source["x"] == "class"
    assert t < 0.5 and u < t
    assert u == p[p < t].max()  # every item below t is negative enough here
    neg = p[:, 0] <= u
    npv = precision_lower_bound(int((~y[neg, 0]).sum()), int(neg.sum()), 0.95)
    assert npv >= 0.3 and res.negative_bound["x"] == pytest.approx(npv)


def _realised(big: np.ndarray, hit: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A large fresh sample, sorted, with cumulative counts for any cut."""
    order = np.argsort(big)
    s, h = big[order], hit[order]
    return s, np.append(np.cumsum(h[::-1])[::-1], 0), np.insert(np.cumsum(~h), 0, 0)


def _coverage(method: str, target: float = 0.9, draws: int = 200) -> tuple[float, float]:
    """Share of seeded calibration draws whose thresholds meet the target on fresh data.

    Scores follow Beta(0.5, 0.5) and truth is Bernoulli(score) (a calibrated model), so
    the realised precision of {p >= t} and NPV of {p <= u} is measured on one large
    independent sample; a side left unreachable in a draw is not counted for it.
    """
    rng = np.random.default_rng(2024)
    big = rng.beta(0.5, 0.5, 400_000)
    s, tail_pos, head_neg = _realised(big, rng.random(big.size) < big)
    met = {"pos": [], "neg": []}
    for d in range(draws):
        r = np.random.default_rng(10_000 + d)
        p = r.beta(0.5, 0.5, (400, 1))
        res = ml.choose_multilabel_thresholds(p, r.random(p.shape) < p, ["x"], target, 0.95, method)
        t, u = res.positive["x"], res.negative["x"]
        if t <= 1.0:
            i = np.searchsorted(s, t, side="left")
            met["pos"].append(tail_pos[i] / (s.size - i) >= target)
        if u >= 0.0:
            j = np.searchsorted(s, u, side="right")
            met["neg"].append(head_neg[j] / j >= target)
    assert len(met["pos"]) > draws // 2 and len(met["neg"]) > draws // 2
    return float(np.mean(met["pos"])), float(np.mean(met["neg"]))


def test_coverage_simulation_bound_meets_target_and_point_estimate_does_not() -> None:
    cp_pos, cp_neg = _coverage("clopper_pearson")
    assert cp_pos >= 0.93 and cp_neg >= 0.93
    pt_pos, pt_neg = _coverage("point")
    assert pt_pos < 0.75 and pt_neg < 0.75  # no bound: misses about half the time


def test_decide_on_hand_made_scores_with_sentinels() -> None:
    probs = np.array([[0.95, 0.50, 0.30, 0.0], [0.60, 0.05, 0.99, 1.0], [0.80, 0.20, 0.10, 0.5]])
    positive = np.array([0.80, 0.90, NEVER_ACCEPT, NEVER_ACCEPT])
    negative = np.array([0.20, 0.10, 0.40, ml.NEVER_NEGATIVE])
    pos, undecided = ml.decide(probs, positive, negative)
    np.testing.assert_array_equal(
        pos,
        [[True, False, False, False], [False, False, False, False], [True, False, False, False]],
    )
    np.testing.assert_array_equal(
        undecided,
        [[False, True, False, True], [True, False, True, True], [False, True, False, True]],
    )
    # overlapping thresholds: the positive side wins at the shared score
    pos, undecided = ml.decide(np.array([[0.5]]), np.array([0.5]), np.array([0.5]))
    assert pos[0, 0] and not undecided[0, 0]


def test_decision_margin_ignores_sentinels_and_zeroes_undecidable_classes() -> None:
    probs = np.array([[0.95, 0.50], [0.35, 0.02], [0.70, 0.50]])
    positive = np.array([0.80, NEVER_ACCEPT])
    negative = np.array([0.20, 0.10])
    m = ml.decision_margin(probs, positive, negative)
    assert m.dtype == np.float32
    # row 0: class 0 |0.95-0.80|=0.15, class 1 only its negative: |0.5-0.1|=0.4
    # row 1: class 0 min(0.45, 0.15)=0.15, class 1 0.08; row 2: 0.10 vs 0.40
    np.testing.assert_allclose(m, [0.15, 0.08, 0.10], atol=1e-6)
    never = ml.decision_margin(probs, np.array([0.8, NEVER_ACCEPT]), np.array([0.2, -0.01]))
    np.testing.assert_array_equal(never, np.zeros(3, np.float32))
    assert ml.decision_margin(np.zeros((0, 2)), positive, negative).shape == (0,)


def test_json_round_trip_and_thresholds_arrays_from_a_card_like_object() -> None:
    p, y = _separated(400, seed=3)
    y[:, 2] = np.random.default_rng(0).random(400) < 0.5  # unreachable both sides
    res = ml.choose_multilabel_thresholds(p, y, ["a", "b", "c"], 0.95, method="wilson")
    back = ml.MultiLabelThresholds.from_json(json.loads(json.dumps(res.to_json())))
    assert back == res
    assert back.explanation_lines() == res.explanation_lines() and len(res.explanation_lines())

    # the model card carries the same two maps under its own names
    card = ModelCard(
        model_version="v1",
        arch="mlp",
        modality="text",
        classes=["b", "a"],
        preprocessing={},
        task="multilabel",
        thresholds={"a": 0.9, "b": 0.8},
        negative_thresholds={"a": 0.1, "b": ml.NEVER_NEGATIVE},
    )
    pos, neg = ml.thresholds_arrays(card)
    assert pos.tolist() == [0.8, 0.9] and neg.tolist() == [ml.NEVER_NEGATIVE, 0.1]
    assert ml.thresholds_arrays(res)[0].tolist() == [res.positive[c] for c in "abc"]
    card.negative_thresholds = {"b": 0.1}
    with pytest.raises(ValueError, match="'a' has no negative threshold"):
        ml.thresholds_arrays(card)
    with pytest.raises(ValueError, match="no positive/negative thresholds"):
        ml.thresholds_arrays(object())


@pytest.mark.parametrize(
    ("probs", "targets", "kwargs", "message"),
    [
        (np.full(4, 0.5), np.zeros(4), {}, "2-D"),
        (np.full((4, 3), 0.5), np.zeros((4, 3)), {}, "3 columns but 2 classes"),
        (np.full((4, 2), 0.5), np.zeros((3, 2)), {}, "shape"),
        (np.full((4, 2), 0.5), np.full((4, 2), 2), {}, "0/1"),
        (np.full((4, 2), 1.5), np.zeros((4, 2)), {}, r"\[0, 1\]"),
        (np.full((4, 2), 0.5), np.zeros((4, 2)), {"target_precision": 0.0}, "target_precision"),
        (np.full((4, 2), 0.5), np.zeros((4, 2)), {"target_precision": 1.2}, "target_precision"),
        (np.full((4, 2), 0.5), np.zeros((4, 2)), {"method": "bayes"}, "unknown method"),
        (np.full((4, 2), 0.5), np.zeros((4, 2)), {"confidence_level": 1.0}, "confidence_level"),
        (np.full((4, 2), 0.5), np.zeros((4, 2)), {"weights": np.ones(3)}, "weights"),
        (np.full((4, 2), 0.5), np.zeros((4, 2)), {"weights": -np.ones(4)}, "weights"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_problem(
    probs: np.ndarray, targets: np.ndarray, kwargs: dict, message: str
) -> None:
    args = {"target_precision": 0.9, **kwargs}
    with pytest.raises(ValueError, match=message):
        ml.choose_multilabel_thresholds(probs, targets, ["a", "b"], **args)


def test_bad_decision_and_fit_inputs_raise() -> None:
    with pytest.raises(ValueError, match="positive thresholds"):
        ml.decide(np.zeros((2, 3)), np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="negative thresholds"):
        ml.decision_margin(np.zeros((2, 3)), np.zeros(3), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="0/1"):
        ml.fit_class_temperatures(np.zeros((3, 2)), np.full((3, 2), 0.5))
    with pytest.raises(ValueError, match="2-D"):
        ml.fit_class_temperatures(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="distinct"):
        ml.choose_multilabel_thresholds(np.zeros((2, 2)), np.zeros((2, 2)), ["a", "a"], 0.9)
