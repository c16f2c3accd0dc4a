"""The multilabel section of the run report (raylabel.report.multilabel), and that a multiclass
report does not change with it."""

from __future__ import annotations

import copy
import re
from typing import Any

import numpy as np
import pytest
from test_run_page import minimal_summary, synthetic_summary

from raylabel.report import plots
from raylabel.report.run_page import render
from raylabel.stats.multilabel_counts import LabelSetCounts, precision_coverage_by_class

CLASSES = ["person", "car", "bicycle", "dog", "tree"]
SECTION = ">Multilabel: per-class decisions</h2>"
PNG = "data:image/png;base64,"


def _decide(
    scores: np.ndarray, pos: dict[str, float], neg: dict[str, float], classes: list[str]
) -> tuple[list[list[str]], list[list[str]], np.ndarray]:
    """The contract's rule: positive at/above pos, negative at/below neg, otherwise undecided."""
    p = np.array([pos[c] for c in classes])
    n = np.array([neg[c] for c in classes])
    is_pos = scores >= p
    und = ~is_pos & (scores > n)
    labels = [[c for c, v in zip(classes, r, strict=True) if v] for r in is_pos]
    undecided = [[c for c, v in zip(classes, r, strict=True) if v] for r in und]
    return labels, undecided, ~und.any(axis=1)


def multilabel_summary(classes: list[str] = CLASSES, seed: int = 0) -> dict[str, Any]:
    """A multilabel summary.json built with the real statistics from synthetic scores."""
    rng = np.random.default_rng(seed)
    k = len(classes)
    prevalence = np.linspace(0.5, 0.08, k)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        truth = rng.random((n, k)) < prevalence
        truth[:, 1] |= truth[:, 0] & (rng.random(n) < 0.5)  # car comes with person
        logits = rng.normal(np.where(truth, 2.2, -2.2), 1.6)
        return 1 / (1 + np.exp(-logits)), truth

    val_scores, val_truth = draw(2000)
    pos = {c: 0.8 for c in classes}
    neg = {c: 0.15 for c in classes}
    pos[classes[-1]], neg[classes[0]] = 1.01, -0.01  # never positive / never negative
    counts = LabelSetCounts(classes)
    for _ in range(3):  # three write tasks, merged as the driver does
        scores, _ = draw(1500)
        counts.merge(LabelSetCounts(classes).add(*_decide(scores, pos, neg, classes)))
    block = counts.to_json()
    return {
        "task": "multilabel",
        "run_id": "20240611T021500Z-ml",
        "drop": "2024-06-11",
        "model_version": "resnet18-ml-20240601",
        "classes": classes,
        "counts": {
            "input": block["total"],
            "labeled": block["total"],
            "errors": 0,
            "accepted": block["accepted"],
            "needs_review": block["total"] - block["accepted"],
        },
        "qc": {"target_precision": 0.9, "confidence_level": 0.95},
        "multilabel": {
            "classes": classes,
            "counts": block,
            "thresholds": {
                "positive": pos,
                "negative": neg,
                "positive_source": {c: "unreachable" if pos[c] > 1 else "class" for c in classes},
                "negative_source": {c: "unreachable" if neg[c] < 0 else "class" for c in classes},
            },
            "precision_coverage": precision_coverage_by_class(val_scores, val_truth, classes),
        },
    }


@pytest.fixture(scope="module")
def page() -> str:
    return render(multilabel_summary())


def test_multilabel_page_has_every_part(page: str) -> None:
    assert SECTION in page
    for title in (
        "Per-class decisions and thresholds",
        "Precision vs coverage per class",
        "Label sets",
    ):
        assert f">{title}</h3>" in page, title
    for alt in ("precision vs coverage per class", "label cardinality", "label co-occurrence"):
        assert re.search(rf'<img src="{PNG}[A-Za-z0-9+/=]+" alt="{alt}">', page), alt
    assert "unavailable" not in page
    assert "unreachable: never positive" in page and "never (1.01)" in page
    assert "unreachable: never negative" in page and "never (-0.01)" in page
    # the section sits after trust and before the distributions
    assert page.index(SECTION) < page.index(">Run details</h2>")


def test_table_shows_the_counts_block(page: str) -> None:
    s = multilabel_summary()
    pc = s["multilabel"]["counts"]["per_class"]
    table = page[page.index("Per-class decisions and thresholds") :]
    table = table[: table.index("</table>")]
    for c in CLASSES:
        row = table[table.index(f"<td>{c}</td>") :]
        row = row[: row.index("</tr>")]
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
        assert cells[1:4] == [f"{pc[c][k]:,}" for k in ("positive", "undecided", "negative")], c
    total = s["multilabel"]["counts"]["total"]
    assert f"{total:,}" in page


def test_missing_sub_keys_render_what_is_there() -> None:
    full = multilabel_summary()
    for key in ("counts", "thresholds", "precision_coverage", "classes"):
        s = copy.deepcopy(full)
        del s["multilabel"][key]
        out = render(s)
        assert SECTION in out and "unavailable" not in out, key
        has_table = key != "counts" or "thresholds" in s["multilabel"]
        assert (">Per-class decisions and thresholds</h3>" in out) == has_table, key
    s = copy.deepcopy(full)
    del s["multilabel"]["counts"]
    out = render(s)
    assert "label co-occurrence" not in out and "precision vs coverage per class" in out
    s = copy.deepcopy(full)
    s["multilabel"]["counts"]["cooccurrence"] = [[1, 2]]  # wrong shape: that plot is left out
    s["multilabel"]["precision_coverage"]["car"] = {"coverage": None}
    s["multilabel"]["thresholds"]["positive"]["dog"] = "n/a"
    out = render(s)
    assert "label co-occurrence" not in out and "label cardinality" in out
    assert "unavailable" not in out
    bare = render({"task": "multilabel"})
    assert SECTION in bare and "no multilabel statistics" in bare


def test_many_classes_are_capped_in_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plots, "MAX_PLOT_CLASSES", 4)
    names = [f"tag{i:02d}" for i in range(9)]
    out = render(multilabel_summary(names, seed=2))
    assert "Only the 4 largest classes are drawn" in out
    assert "<td>tag08</td>" in out  # the table still lists every class
    assert out.count(PNG) == 3 and "unavailable" not in out


def test_class_names_are_escaped() -> None:
    evil = '<img src=x onerror="alert(3)">'
    out = render(multilabel_summary(["cat", evil, "dog"]))
    assert "<img src=x" not in out
    assert "&lt;img src=x onerror=&quot;alert(3)&quot;&gt;" in out


def test_multiclass_report_is_unchanged() -> None:
    """A multiclass summary renders exactly as before, whatever multilabel keys it carries."""
    for s in (synthetic_summary(), minimal_summary()):
        before = render(s)
        assert SECTION not in before
        with_block = copy.deepcopy(s)
        with_block["multilabel"] = multilabel_summary()["multilabel"]
        assert render(with_block) == before
        with_block["task"] = "multiclass"
        assert render(with_block) == before
