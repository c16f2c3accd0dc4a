"""The morning page from plain night dicts: every drop and night listed, plots inline,
missing numbers as dashes rather than errors."""

from __future__ import annotations

from raylabel.report.morning_page import render_morning


def _night(night_id: str, **extra: object) -> dict:
    return {
        "night_id": night_id,
        "finished_at": "2026-11-30T03:00:00+00:00",
        "model_version": "m-1",
        "retrained": False,
        "retrain_reason": "model is current",
        "counts": {"done": 1, "skipped": 1, "waiting": 1, "locked": 0, "failed": 0},
        "drops": [
            {
                "drop": "cats-0412",
                "status": "done",
                "run_id": "r-1",
                "drift": "warn",
                "counts": {"input": 140, "labeled": 138, "accepted": 100, "inferred": 40,
                           "reused": 100, "removed": 2},
                "evaluation": {"overall": {"point": 0.93, "lower": 0.88, "upper": 0.96}},
            },
            {"drop": "dogs", "status": "skipped"},
            {"drop": "late", "status": "waiting", "detail": "no _READY marker yet"},
        ],
        **extra,
    }  # fmt: skip


def test_page_lists_nights_drops_reviews_and_promotions() -> None:
    promo = {
        "promoted": False,
        "reason": "not promoted: worse than m-1 on 40 gate items (accuracy 0.700 < 0.900 - 0.02)",
        "items": 40,
        "candidate_scores": {"accuracy": {"value": 0.7, "low": 0.55, "high": 0.82}},
        "current_scores": {"accuracy": {"value": 0.9, "low": 0.77, "high": 0.96}},
    }
    nights = [
        _night("n-2", retrained=True, candidate="m-2", promotion=promo),
        _night("n-1", retrain_failed="RuntimeError: boom"),
    ]
    page = render_morning(nights)
    for text in (
        "n-1",
        "n-2",
        "cats-0412",
        "93.0% [88.0%, 96.0%]",
        "no _READY marker yet",
        "refused",
        "m-2",
        "retrain failed: RuntimeError: boom",
        "72.5%",
    ):
        assert text in page, text  # fmt: skip
    assert page.count("data:image/png;base64,") == 2  # items per night, review accuracy
    assert "unavailable" not in page


def test_empty_and_malformed_nights_render() -> None:
    assert "No night has run yet" in render_morning([])
    page = render_morning([{"night_id": "n-x", "drops": [{"status": "done", "counts": None}]}])
    assert "n-x" in page and "unavailable" not in page
