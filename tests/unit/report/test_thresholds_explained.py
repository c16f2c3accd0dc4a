"""The trust section explains where thresholds come from: how they were calibrated
(method, items, reviewed items) and, next to each class that accepts little, why."""

from __future__ import annotations

import re
from typing import Any

import pytest

from raylabel.report import render_html
from raylabel.report.kit import table
from raylabel.report.run_page import render
from raylabel.report.trust import calibration_line, explanations

XSS = "<script>alert(1)</script>"
HEX_LINE = (
    "hexagon: 38 calibration items predicted hexagon; best lower bound 0.912 (30 items at "
    "confidence >= 0.800, precision 0.967); about 22 more labeled or reviewed hexagon items "
    "would reach 0.95 alone; uses the pooled threshold meanwhile"
)
STAR_LINE = (
    "star: no calibration item is predicted star; its precision never exceeds 0.95 at any "
    "cut: more items will not help until the model improves; accepts nothing"
)
SQUARE_LINE = (
    "square: 12 calibration items predicted square; best lower bound 0.700 (12 items at "
    "confidence >= 0.500, precision 0.917); about 40 more labeled or reviewed square items "
    "would reach 0.95 alone; uses the pooled threshold meanwhile"
)


def _cls(labeled: int, accepted: int, threshold: float, source: str) -> dict[str, Any]:
    return {
        "labeled": labeled,
        "accepted": accepted,
        "coverage": accepted / labeled if labeled else None,
        "threshold": threshold,
        "threshold_source": source,
    }


def old_summary() -> dict[str, Any]:
    """A summary from before calibration details were recorded (no new qc keys)."""
    per_class = {
        "circle": _cls(500, 450, 0.81, "class"),
        "hexagon": _cls(200, 10, 0.93, "global"),
        "square": _cls(300, 120, 0.93, "global"),
        "star": _cls(40, 0, 1.01, "unreachable"),
    }
    labeled = sum(v["labeled"] for v in per_class.values())
    accepted = sum(v["accepted"] for v in per_class.values())
    return {
        "run_id": "r3",
        "drop": "2024-06-12",
        "classes": list(per_class),
        "counts": {
            "input": labeled,
            "labeled": labeled,
            "errors": 0,
            "accepted": accepted,
            "needs_review": labeled - accepted,
        },
        "per_class": per_class,
        "qc": {
            "target_precision": 0.95,
            "confidence_level": 0.95,
            "temperature": 1.3,
            "global_threshold": 0.93,
            "rule": "per-class lowest threshold whose lower bound >= 0.95",
        },
    }


def new_summary() -> dict[str, Any]:
    """The same run with the calibration details the label stage now records."""
    s = old_summary()
    s["qc"].update(
        {
            "bound": "clopper_pearson",
            "calibration": {
                "method": "crossfit",
                "items": 1200,
                "folds": 5,
                "reviewed_items": 40,
                "description": "5-fold out-of-fold predictions of every readable seed item",
            },
            "threshold_source": "card+reviews",
            "reviewed_items": 300,
            "reviewed_runs": {"2024-06-10/r1": 120, "2024-06-11/r2": 180},
            "explanation_lines": [HEX_LINE, SQUARE_LINE, STAR_LINE],
        }
    )
    return s


def _trust(page: str) -> str:
    m = re.search(r'<section id="trust">.*?</section>', page, re.S)
    assert m, "no trust section"
    return m.group(0)


def _row_after(section: str, cls: str) -> str:
    """The table row right after the class's own row."""
    m = re.search(rf"<tr><td>{re.escape(cls)}</td>.*?</tr>(<tr>.*?</tr>)?", section, re.S)
    assert m, f"no row for {cls}"
    return m.group(1) or ""


def test_calibration_line_shows_method_items_and_reviews() -> None:
    trust = _trust(render(new_summary()))
    assert "How these thresholds were calibrated:" in trust
    assert (
        "cross-fitted (5-fold out-of-fold predictions) on 1,200 calibration items, "
        "40 of them reviewed drop items; re-derived for this run with 300 reviewed items "
        "from 2 runs (2024-06-10/r1: 120, 2024-06-11/r2: 180)."
    ) in trust
    assert "Clopper-Pearson" in trust
    assert "5-fold out-of-fold predictions of every readable seed item" in trust


def test_explanation_sits_under_each_low_coverage_class() -> None:
    trust = _trust(render(new_summary()))
    hexagon = _row_after(trust, "hexagon")
    assert 'class="note"' in hexagon and "about 22 more labeled or reviewed hexagon" in hexagon
    assert "accepts nothing" in _row_after(trust, "star")  # no coverage at all
    # square accepts 40%: not low, so its line is not repeated; circle stands on its own
    assert "square: 12 calibration items" not in trust
    assert "circle:" not in trust
    # the explanation row spans the whole table
    assert f'colspan="6" class="note">{HEX_LINE.replace(">", "&gt;")}</td>' in trust


def test_holdout_without_reviews_says_so_briefly() -> None:
    s = old_summary()
    s["qc"].update(
        calibration={"method": "holdout", "items": 800, "folds": None, "reviewed_items": 0},
        bound="point",
        threshold_source="card",
        reviewed_items=0,
        reviewed_runs={},
        explanation_lines=[],
    )
    trust = _trust(render(s))
    assert "a held-out validation split on 800 calibration items." in trust
    assert (
        "reviewed" not in trust.split("How these thresholds were calibrated:")[1].split("</p>")[0]
    )
    assert "point estimate (no lower bound)" in trust
    assert "the model card" in trust


def test_new_text_is_escaped() -> None:
    s = new_summary()
    bad = f"{XSS}hex"
    s["classes"].append(bad)
    s["per_class"][bad] = _cls(10, 0, 0.93, "global")
    s["qc"]["explanation_lines"].append(f"{bad}: 3 calibration items predicted {bad} & more")
    s["qc"]["calibration"]["description"] = f"seed {XSS}"
    s["qc"]["calibration"]["method"] = XSS
    s["qc"]["reviewed_runs"] = {XSS: 3}
    s["qc"]["bound"] = XSS
    page = render(s)
    assert XSS not in page and "<script" not in page.lower()
    esc = "&lt;script&gt;alert(1)&lt;/script&gt;"
    trust = _trust(page)
    assert f"{esc}hex: 3 calibration items predicted {esc}hex &amp; more" in trust
    assert f"seed {esc}" in trust
    assert f"{esc}: 3" in trust  # the run name in the calibration line


def test_old_summary_renders_without_the_new_parts() -> None:
    page = render(old_summary())
    trust = _trust(page)
    assert "How these thresholds were calibrated" not in trust
    assert 'class="note">hexagon' not in trust and "colspan" not in trust
    assert "Precision bound" not in trust and "Thresholds from" not in trust
    assert "unavailable" not in page
    assert render_html(old_summary()) == page


@pytest.mark.parametrize(
    "qc",
    [
        {"explanation_lines": "hexagon: text", "calibration": "crossfit"},
        {"explanation_lines": [None, 3, {"a": 1}], "calibration": {"items": "many"}},
        {"reviewed_items": "x", "reviewed_runs": ["r1"], "threshold_source": None},
        {"reviewed_items": -5, "bound": None, "calibration": {"method": None, "folds": "x"}},
        {"explanation_lines": ["nosuchclass: text", "hexagon without colon"]},
    ],
)
def test_malformed_details_never_break_the_page(qc: dict[str, Any]) -> None:
    s = old_summary()
    s["qc"].update(qc)
    page = render(s)
    assert "unavailable" not in page
    assert ">Trust: calibration and thresholds</h2>" in page
    assert "colspan" not in _trust(page)


def test_calibration_line_pieces() -> None:
    assert calibration_line({}) == ""
    assert calibration_line({"calibration": {"items": 50}}) == "50 calibration items."
    assert calibration_line({"calibration": {"method": "crossfit"}}) == "cross-fitted."
    many = {f"r{i}": 1 for i in range(7)}
    line = calibration_line({"reviewed_items": 7, "reviewed_runs": many})
    assert line.startswith("re-derived for this run with 7 reviewed items from 7 runs (r0: 1")
    assert "r4: 1, 2 more)" in line and "r5" not in line


def test_explanations_pick_the_class_by_name_prefix() -> None:
    s = old_summary()
    s["classes"] = ["a", "a: b"]
    s["per_class"] = {"a": _cls(10, 0, 1.01, "unreachable"), "a: b": _cls(10, 0, 0.9, "global")}
    s["qc"]["explanation_lines"] = ["a: b: 3 items", "a: 2 items"]
    assert explanations(s) == {"a: b": "a: b: 3 items", "a": "a: 2 items"}


def test_table_notes_are_escaped_and_span_all_columns() -> None:
    html = table(["x", "y"], [("1", "2"), ("3", "4")], notes={1: "<i>why</i>"})
    assert html.endswith(
        '<tr><td>3</td><td>4</td></tr><tr><td colspan="2" class="note">'
        "&lt;i&gt;why&lt;/i&gt;</td></tr></tbody></table>"
    )
    assert table(["x"], [("1",)]) == table(["x"], [("1",)], notes={})
