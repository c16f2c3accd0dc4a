"""Tests for the self-contained HTML run report (raylabel.report.run_page)."""

from __future__ import annotations

import math
import re
import sys
from typing import Any

import numpy as np
import pytest

from raylabel.report import plots
from raylabel.report.run_page import render
from raylabel.stats import calibration as calibrate

CLASSES = ["circle", "square", "triangle", "star"]
BIN_EDGES = [0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0]
SECTIONS = [
    "Summary",
    "Trust: calibration and thresholds",
    "Distributions",
    "Review sample",
    "Evaluation",
    "Errors",
    "Run details",
]
XSS = "<script>alert(1)</script>"


def _estimate(point: float, half: float, n: int, pop: int) -> dict[str, Any]:
    """Same shape as estimate.Estimate.to_json()."""
    return {
        "point": point,
        "lower": max(0.0, point - half),
        "upper": min(1.0, point + half / 2),
        "n_reviewed": n,
        "population": pop,
        "method": "korn_graubard_stratified",
        "confidence_level": 0.95,
        "n_effective": float(n),
        "uncovered_population": 0,
        "uncovered_strata": [],
    }


def synthetic_summary(seed: int = 0) -> dict[str, Any]:
    """A realistic summary.json: validation curves come from the real calibrate functions."""
    rng = np.random.default_rng(seed)
    k = len(CLASSES)
    # Validation: over-confident logits (temperature > 1 fixes them), "star" rare.
    n_val = 3000
    y = rng.choice(k, n_val, p=[0.4, 0.3, 0.25, 0.05])
    logits = rng.normal(0.0, 1.0, (n_val, k)) * 2.5
    logits[np.arange(n_val), y] += rng.normal(5.5, 3.0, n_val)
    t = calibrate.fit_temperature(logits, y)
    raw, cal = calibrate.softmax(logits), calibrate.softmax(logits, t)
    thr = calibrate.choose_thresholds(cal, y, CLASSES, 0.95, 0.95, 400)  # star: global
    validation = {
        "n": n_val,
        "accuracy": float((raw.argmax(1) == y).mean()),
        "loss": 0.41,
        "ece_before": calibrate.expected_calibration_error(raw, y),
        "ece_after": calibrate.expected_calibration_error(cal, y),
        "reliability_before": calibrate.reliability_curve(raw, y),
        "reliability_after": calibrate.reliability_curve(cal, y),
        "coverage_precision": calibrate.coverage_precision_curve(cal, y),
        "per_class_accuracy": {
            c: float((raw.argmax(1)[y == i] == i).mean()) for i, c in enumerate(CLASSES)
        },
    }
    # Labeled drop: per-class calibrated confidences, 100-bin histograms, strata.
    sizes = {"circle": 5200, "square": 3900, "triangle": 2100, "star": 700}
    shapes = {"circle": (9, 1.0), "square": (6, 1.2), "triangle": (4, 1.5), "star": (2.5, 1.5)}
    hist, per_class, strata = {}, {}, {}
    for c in CLASSES:
        a, b = shapes[c]
        conf = np.clip(1 / k + (1 - 1 / k) * rng.beta(a, b, sizes[c]), 0, 0.999999)
        hist[c] = np.bincount((conf * 100).astype(int), minlength=100).tolist()
        threshold = thr.thresholds[c]
        accepted = int((conf >= threshold).sum())
        per_class[c] = {
            "labeled": sizes[c],
            "accepted": accepted,
            "coverage": accepted / sizes[c],
            "threshold": threshold,
            "threshold_source": thr.source[c],
        }
        bins = np.clip(np.searchsorted(BIN_EDGES, conf, side="right") - 1, 0, len(BIN_EDGES) - 2)
        for bi, cnt in zip(*np.unique(bins, return_counts=True), strict=True):
            strata[f"{c}|{BIN_EDGES[bi]:.2f}-{BIN_EDGES[bi + 1]:.2f}"] = int(cnt)
    labeled = sum(sizes.values())
    accepted = sum(v["accepted"] for v in per_class.values())
    errors_by_stage = {"decode": 9, "preprocess": 3, "inference": 1}
    n_err = sum(errors_by_stage.values())
    allocation = {
        key: min(pop, 4 + int(12 * (1 - float(key.split("|")[1][:4]))))
        for key, pop in strata.items()
    }
    return {
        "run_id": "20240611T021500Z-7f3a",
        "drop": "2024-06-11",
        "model_version": "resnet18-20240601-ab12cd",
        "modality": "image",
        "arch": "resnet18",
        "classes": CLASSES,
        "created_at": "2024-06-11T02:31:07+00:00",
        "raylabel_version": "0.1.0",
        "input": {"uri": "s3://drops/2024-06-11/", "kind": "image_dir"},
        "input_fingerprint": "sha1:9a0c7e5d41",
        "output": {"run_dir": "s3://labels/runs/2024-06-11/20240611T021500Z-7f3a"},
        "counts": {
            "input": labeled + n_err,
            "labeled": labeled,
            "errors": n_err,
            "accepted": accepted,
            "needs_review": labeled - accepted,
            "duplicates": 17,
        },
        "coverage": {
            "overall": accepted / labeled,
            "per_class": {c: v["coverage"] for c, v in per_class.items()},
        },
        "per_class": per_class,
        "errors_by_stage": errors_by_stage,
        "error_examples": [
            {"item_id": "img/000123.png", "stage": "decode", "error": "cannot identify image"},
            {"item_id": XSS, "stage": "decode", "error": "bad <b>header</b> & 'quotes'"},
            {"item_id": "img/004521.png", "stage": "preprocess", "error": "x" * 900},
        ],
        "confidence_histogram": {"edges": [i / 100 for i in range(101)], "per_class": hist},
        "strata": strata,
        "qc": {
            "target_precision": 0.95,
            "confidence_level": 0.95,
            "temperature": t,
            "global_threshold": thr.global_threshold,
            "rule": "per-class lowest threshold whose one-sided 95% lower bound of validation "
            "precision >= 0.95",
        },
        "validation": validation,
        "review": {
            "size": sum(allocation.values()),
            "requested": 300,
            "strata": len(allocation),
            "allocation_method": "error_weighted",
            "allocation": allocation,
            "seed": 1234,
            "uncertain": 50,
            "files": {
                "review_sample.parquet": "s3://labels/runs/x/review/review_sample.parquet",
                "review_sample.csv": "s3://labels/runs/x/review/review_sample.csv",
            },
        },
        "pool": {"num_actors": 4, "cpus_per_actor": 2.0, "gpus_per_actor": 0.0},
        "durations_s": {"plan": 3.2, "pipeline": 181.5, "review": 12.4, "total": 197.1},
        "throughput_items_per_s": 65.3,
        "evaluation": {
            "overall": _estimate(0.912, 0.04, 296, labeled),
            "accepted": _estimate(0.981, 0.015, 140, accepted),
            "per_class": {
                c: _estimate(p, h, n, sizes[c])
                for c, p, h, n in zip(
                    CLASSES,
                    [0.95, 0.92, 0.86, 0.7],
                    [0.03, 0.04, 0.06, 0.12],
                    [80, 80, 70, 66],
                    strict=True,
                )
            },
            "flags": [
                {
                    "stratum": "star|0.70-0.80",
                    "stratum_population": 180,
                    "n_reviewed": 14,
                    "accuracy": 0.43,
                    "lower": 0.18,
                    "upper": 0.71,
                    "mean_confidence": 0.75,
                    "direction": "overconfident",
                }
            ],
            "n_reviewed": 296,
        },
        "demo": {"accuracy_all": 0.915, "accuracy_accepted": 0.983, "n_truth": labeled},
    }


def minimal_summary() -> dict[str, Any]:
    """Only the keys every run has."""
    return {
        "classes": ["a", "b"],
        "counts": {"input": 10, "labeled": 10, "errors": 0, "accepted": 6, "needs_review": 4},
        "coverage": {"overall": 0.6, "per_class": {"a": 0.8, "b": None}},
        "per_class": {
            "a": {
                "labeled": 10,
                "accepted": 6,
                "coverage": 0.6,
                "threshold": 0.9,
                "threshold_source": "class",
            },
            "b": {
                "labeled": 0,
                "accepted": 0,
                "coverage": None,
                "threshold": 1.01,
                "threshold_source": "unreachable",
            },
        },
    }


@pytest.fixture(scope="module")
def full() -> tuple[dict[str, Any], str]:
    s = synthetic_summary()
    return s, render(s)


def test_full_report_has_headline_sections_and_plots(full: tuple[dict[str, Any], str]) -> None:
    s, page = full
    assert page.startswith("<!DOCTYPE html>")
    for key in ("input", "labeled", "errors", "accepted", "needs_review"):
        assert f"{s['counts'][key]:,}" in page, key
    assert f"{100 * s['coverage']['overall']:.1f}%" in page
    for title in SECTIONS:
        assert f">{title}</h2>" in page, title
    assert page.count("data:image/png;base64,") >= 6
    assert "unavailable" not in page  # no section or plot fell back to its error note
    assert "meets target" in page  # accepted precision CI is above 0.95
    assert "Self-graded" in page


def test_report_is_self_contained(full: tuple[dict[str, Any], str]) -> None:
    _, page = full
    low = page.lower()
    assert "http://" not in low and "https://" not in low
    assert "<script" not in low and "<link" not in low
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(?!data:)[^"'\s>]""", low)
    assert len(page.encode()) < 1_500_000


def test_user_data_is_escaped(full: tuple[dict[str, Any], str]) -> None:
    _, page = full
    assert XSS not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>header</b>" not in page and "bad &lt;b&gt;header&lt;/b&gt; &amp;" in page


def test_markup_in_every_user_field_is_escaped() -> None:
    """Class names, the drop name, uris, ids, model version, strata and error text all come
    from the drop or its owner; none may reach the page as markup."""
    evil_class = '<img src=x onerror="alert(2)">'
    s = synthetic_summary()
    s["classes"] = [*CLASSES[:-1], evil_class]
    s["per_class"][evil_class] = s["per_class"].pop(CLASSES[-1])
    s["coverage"]["per_class"][evil_class] = s["coverage"]["per_class"].pop(CLASSES[-1])
    s["confidence_histogram"]["per_class"][evil_class] = s["confidence_histogram"]["per_class"].pop(
        CLASSES[-1]
    )
    s["strata"] = {
        k.replace(f"{CLASSES[-1]}|", f"{evil_class}|"): v for k, v in s["strata"].items()
    }
    s["drop"] = f"night{XSS}"
    s["run_id"] = f"r-{XSS}"
    s["model_version"] = f"m-{XSS}"
    s["input"]["uri"] = f"s3://b/{XSS}/"
    s["output"]["run_dir"] = f"s3://b/runs/{XSS}"
    s["error_examples"] = [{"item_id": f"a{XSS}", "stage": XSS, "error": f"e{XSS}"}]
    s["review"]["files"] = {XSS: f"s3://b/{XSS}"}
    page = render(s)
    assert "<script" not in page.lower()
    assert "onerror=" not in page.replace("onerror=&quot;", "")  # only ever escaped
    assert "<img src=x" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 6
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in page
    assert "unavailable" not in page  # escaped, not refused: every section still renders


def test_minimal_summary_renders() -> None:
    page = render(minimal_summary())
    assert ">Summary</h2>" in page and ">Distributions</h2>" in page
    assert "unreachable" in page and "never (1.01)" in page
    assert ">Review sample</h2>" not in page and ">Evaluation</h2>" not in page
    assert "No items failed." in page
    assert "unavailable" not in page


def test_missing_none_and_nan_values_never_crash() -> None:
    assert "<html" in render({})
    s = synthetic_summary()
    s["counts"] = {"input": None, "labeled": math.nan, "errors": "n/a", "accepted": None}
    s["coverage"] = None
    s["qc"]["temperature"] = math.nan
    s["qc"]["target_precision"] = None
    s["validation"]["ece_after"] = math.nan
    s["validation"]["reliability_before"] = {"confidence": [0.5, None], "accuracy": [math.nan]}
    s["validation"]["coverage_precision"] = {"threshold": [0.1], "coverage": None}
    s["confidence_histogram"]["edges"] = None
    s["confidence_histogram"]["per_class"]["star"] = [None, math.nan] * 50
    s["per_class"]["circle"] = None
    s["evaluation"]["accepted"] = {"point": None, "lower": None, "upper": None}
    s["evaluation"]["flags"] = [None, {"stratum": None}]
    s["review"]["allocation"] = None
    s["error_examples"] = [None, {"item_id": None, "error": None}]
    s["durations_s"] = {"total": math.inf}
    page = render(s)
    assert ">Evaluation</h2>" in page and "no reviews" in page


def test_many_classes_and_unreachable_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plots, "MAX_PLOT_CLASSES", 6)  # the cap, without 24 panels
    names = [f"c{i:02d}" for i in range(10)]
    rng = np.random.default_rng(1)
    s = minimal_summary()
    s["classes"] = names
    s["per_class"] = {
        c: {
            "labeled": 100 + i,
            "accepted": i,
            "coverage": i / (100 + i),
            "threshold": 1.01 if i % 7 == 0 else 0.9,
            "threshold_source": "global",
        }
        for i, c in enumerate(names)
    }
    s["confidence_histogram"] = {
        "edges": [i / 100 for i in range(101)],
        "per_class": {c: rng.integers(0, 20, 100).tolist() for c in names},
    }
    page = render(s)
    assert (
        "Only the 6 largest classes are drawn" in page
        and "c09" in page
        and page.count("data:image/png;base64,") == 2
    )


def test_render_leaves_no_pyplot_figures(full: tuple[dict[str, Any], str]) -> None:
    if "matplotlib.pyplot" in sys.modules:
        assert not sys.modules["matplotlib.pyplot"].get_fignums()
