"""Drift watch: PSI known answers, verdicts on planted shifts, baseline lookup, and one
label run whose summary.json carries the drift block and the active queue."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from raylabel.config import DriftConfig, load_config
from raylabel.io import layout
from raylabel.io.layout import RunLayout
from raylabel.io.storage import StorageOptions
from raylabel.label import drift

CLASSES = ["circle", "square", "triangle", "cross"]


def test_psi_known_answers() -> None:
    assert drift.psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0)
    expected = (0.25 - 0.5) * math.log(0.5) + (0.75 - 0.5) * math.log(1.5)
    assert drift.psi([1, 3], [2, 2]) == pytest.approx(expected)  # 0.2747
    assert drift.psi([1, 3], [2, 2]) == pytest.approx(drift.psi([2, 2], [1, 3]))  # symmetric
    assert math.isfinite(drift.psi([5, 0], [0, 5]))  # empty bins are floored
    with pytest.raises(ValueError):
        drift.psi([1, 2], [1, 2, 3])


def test_rebin_sums_fine_bins() -> None:
    assert drift.rebin(list(range(100)), 10)[:2] == [45, 145]
    assert sum(drift.rebin([1] * 100, 3)) == 100


def _summary(mix: list[float], n: int, seed: int, errors: int = 0, shift_conf: float = 0.0):
    """A summary.json-like dict drawn from a class mix and a confidence distribution."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(len(CLASSES), size=n, p=np.asarray(mix) / sum(mix))
    conf = np.clip(rng.beta(8, 2, size=n) - shift_conf, 0, 0.999)
    per_class, hist = {}, {}
    for i, c in enumerate(CLASSES):
        m = labels == i
        per_class[c] = {"labeled": int(m.sum())}
        hist[c] = np.bincount((conf[m] * 100).astype(int), minlength=100).tolist()
    return {
        "classes": CLASSES,
        "model_version": "m-1",
        "created_at": f"2026-11-{10 + seed:02d}T00:00:00+00:00",
        "per_class": per_class,
        "confidence_histogram": {"per_class": hist},
        "counts": {"input": n + errors, "labeled": n, "errors": errors},
    }


def test_planted_class_mix_shift_alerts_and_same_distribution_passes() -> None:
    cfg = DriftConfig()
    base = _summary([1, 1, 1, 1], 1500, seed=1)
    clean = drift.compare(_summary([1, 1, 1, 1], 1500, seed=2), base, cfg)
    assert clean["verdict"] == "ok", clean["reasons"]
    assert clean["class_mix"]["psi"] < 0.02
    shifted = drift.compare(_summary([4, 1, 1, 0.25], 1500, seed=3), base, cfg)
    assert shifted["verdict"] == "alert"
    assert shifted["checks"]["class mix"] == "alert"
    assert shifted["class_mix"]["psi"] > cfg.psi_alert
    assert shifted["class_mix"]["chi2_p"] < 1e-6


def test_confidence_and_error_share_checks() -> None:
    cfg = DriftConfig()
    base = _summary([1, 1, 1, 1], 2000, seed=4)
    worse = drift.compare(_summary([1, 1, 1, 1], 2000, seed=5, shift_conf=0.3), base, cfg)
    assert worse["checks"]["confidence"] in ("warn", "alert")
    assert worse["checks"]["class mix"] == "ok"
    errs = drift.compare(_summary([1, 1, 1, 1], 2000, seed=6, errors=150), base, cfg)
    assert errs["error_share"]["increase"] == pytest.approx(150 / 2150)
    assert errs["checks"]["error share"] == "alert" and errs["verdict"] == "alert"
    assert drift.verdict_line(errs).startswith("drift alert (error share 0.0% -> 7.0%")


def _commit(root: Path, drop: str, run_id: str, summary: dict) -> RunLayout:
    run = RunLayout(str(root), drop, run_id)
    Path(run.run_dir).mkdir(parents=True)
    (Path(run.run_dir) / "summary.json").write_text(json.dumps(summary))
    layout.commit_run(run, StorageOptions(), {"model_version": summary["model_version"]})
    return run


def test_baseline_is_the_newest_committed_run_of_the_same_model(tmp_path: Path) -> None:
    opts, cfg = StorageOptions(), DriftConfig()
    current = RunLayout(str(tmp_path), "d3", "r-3")
    assert drift.drift_block(cfg, current, _summary([1, 1, 1, 1], 100, 9), opts)["verdict"] == (
        "no_baseline"
    )
    _commit(tmp_path, "d1", "r-1", _summary([1, 1, 1, 1], 100, seed=1))
    _commit(tmp_path, "d2", "r-2", _summary([1, 1, 1, 1], 100, seed=2))
    other = _summary([1, 1, 1, 1], 100, seed=5)
    other["model_version"] = "m-2"  # newer, but another model
    _commit(tmp_path, "d4", "r-4", other)
    Path(tmp_path / "runs/d5/r-5").mkdir(parents=True)  # not committed: ignored
    found = drift.find_baseline(str(tmp_path), "m-1", current, opts)
    assert found is not None and (found[0].drop, found[0].run_id) == ("d2", "r-2")
    block = drift.drift_block(cfg, current, _summary([1, 1, 1, 1], 100, 9), opts)
    assert block["baseline"]["run_id"] == "r-2" and block["verdict"] in drift.VERDICTS
    assert drift.drift_block(DriftConfig(enabled=False), current, {}, opts) == {
        "verdict": "disabled"
    }


def test_config_rejects_inverted_thresholds() -> None:
    from raylabel.errors import ConfigError

    with pytest.raises(ConfigError, match=r"drift\.psi_alert"):
        load_config([], ["drift.psi_warn=0.3", "drift.psi_alert=0.2"])
    with pytest.raises(ConfigError, match=r"review\.uncertain_strategy"):
        load_config([], ["review.uncertain_strategy=entropy"])


@pytest.mark.slow
def test_label_runs_carry_drift_and_an_active_queue(ray_cluster: None, tmp_path: Path) -> None:
    """Two drops with the same content and model: first no_baseline, second ok (PSI 0);
    the uncertain queue holds each planted exact duplicate once and has no predictions."""
    from modelutil import publish_random_model

    from raylabel.demo.images import ImageDemoSpec, write_image_demo
    from raylabel.label import label

    spec = ImageDemoSpec(
        n_seed_per_class=1,
        n_drop=40,
        image_size=32,
        classes=tuple(CLASSES),
        n_bad_items=0,
        mixed_formats=False,
    )
    data = write_image_demo(tmp_path / "data", spec)
    files = sorted(data.drop_dir.iterdir())
    dups = {}
    for i, src in enumerate(files[:3]):
        copy = data.drop_dir / f"zz-copy-{i}.png"
        shutil.copy(src, copy)
        dups[src.name] = copy.name
    drop_b = tmp_path / "drop_b"
    shutil.copytree(data.drop_dir, drop_b)
    publish_random_model(tmp_path, CLASSES)
    out = tmp_path / "out"
    common = [
        f"output.root={out}",
        "review.size=8",
        "review.uncertain_size=40",
        "review.uncertain_pool_factor=8",  # a pool of every item, even if one class
        "review.dedup_fraction=1e-9",  # exact copies only: an untrained net's features
        # of distinct images can be very close
        "infer.batch_size=64",
    ]
    threads = torch.get_num_threads()
    first = label(load_config([], [*common, f"drop.path={data.drop_dir}", "drop.name=a"]))
    assert first.summary["drift"]["verdict"] == "no_baseline"
    # the pool is embedded in this (the driver's) process, which keeps its thread setting
    assert torch.get_num_threads() == threads
    second = label(load_config([], [*common, f"drop.path={drop_b}", "drop.name=b"]))
    d = second.summary["drift"]
    assert d["verdict"] == "ok" and d["baseline"]["run_id"] == first.run_id
    assert d["class_mix"]["psi"] == pytest.approx(0.0, abs=1e-9)
    on_disk = json.loads((Path(second.run_uri) / "summary.json").read_text())
    assert on_disk["drift"]["verdict"] == "ok"
    review = Path(second.run_uri) / "review"
    queue = pq.read_table(review / "uncertain.parquet")
    ids = queue["item_id"].to_pylist()
    q = on_disk["review"]["uncertain_queue"]
    assert q["strategy"] == "margin_kcenter" and q["embedding"] == "ok", q
    sampled = set(pq.read_table(review / "sample.parquet")["item_id"].to_pylist())
    assert not sampled & set(ids)  # an item goes to reviewers once
    both_left = [(o, c) for o, c in dups.items() if o not in sampled and c not in sampled]
    # 43 items: all but the sample's and one of each copy pair the queue could pick
    assert len(ids) == len(set(ids)) == 43 - len(sampled) - len(both_left)
    for original, copy in both_left:
        assert (original in ids) != (copy in ids)
    tasks = json.loads((review / "uncertain_labelstudio.json").read_text())
    assert len(tasks) == len(ids) and all("predictions" not in t for t in tasks)
    report = (Path(second.run_uri) / "report.html").read_text()
    assert 'id="drift"' in report and 'id="active"' in report


def test_report_shows_drift_and_the_active_learning_curve() -> None:
    from raylabel.report.run_page import render

    cfg = DriftConfig()
    d = drift.compare(_summary([4, 1, 1, 0.25], 400, 3), _summary([1, 1, 1, 1], 400, 1), cfg)
    d["baseline"] = {"drop": "d1", "run_id": "r-1", "labeled": 400}
    s = {
        "run_id": "r-2",
        "drop": "d2",
        "classes": CLASSES,
        "drift": d,
        "review": {"uncertain_queue": {"strategy": "margin_kcenter", "per_class": {"circle": 3}}},
        "active_learning": {"n": [50, 100], "active": [0.8, 0.9], "random": [0.7, 0.8]},
    }
    html = render(s)
    for sid in ('id="drift"', 'id="active"', "badge bad", 'alt="drift"', 'alt="active learning"'):
        assert sid in html, sid
    assert "unavailable" not in html
