"""The promotion gate's rules: a fixed evaluation set, and the verdict (no models needed)."""

from __future__ import annotations

import numpy as np

from raylabel.train.promotion import Score, decide, in_gate_set


def test_gate_set_is_a_fixed_share_of_uris() -> None:
    uris = [f"s3://b/drop/{i}.png" for i in range(20_000)]
    kept = [u for u in uris if in_gate_set(u, 0.2)]
    assert 0.19 < len(kept) / len(uris) < 0.21
    assert kept == [u for u in uris if in_gate_set(u, 0.2)]  # the same every training
    assert set(kept) <= {u for u in uris if in_gate_set(u, 0.5)}  # nested shares
    assert not any(in_gate_set(u, 0.0) for u in uris[:100])


def test_decide_refuses_a_drop_beyond_the_margin_in_either_metric() -> None:
    cur = Score("m-cur", 100, 90, 60, 58)
    same = np.zeros(100)
    ok, why = decide(Score("m-new", 100, 89, 59, 57), cur, same, 0.02)
    assert ok and why.startswith("promoted")
    ok, why = decide(Score("m-new", 100, 80, 60, 55), cur, same, 0.02)
    assert not ok and "accuracy 0.800 < 0.900" in why
    ok, why = decide(Score("m-new", 100, 95, 40, 40), cur, same, 0.02)
    assert not ok and "coverage 0.400 < 0.600" in why and "accuracy" not in why


def test_score_intervals_contain_the_estimate() -> None:
    s = Score("m", 40, 30, 20, 19).to_json()
    for key in ("accuracy", "coverage", "accepted_precision"):
        r = s[key]
        assert r["low"] <= r["value"] <= r["high"]
    assert Score("m", 0, 0, 0, 0).to_json()["accuracy"]["value"] is None
