"""Gather what the morning page shows: the nights' JSON, each labeled drop's run numbers
and newest review evaluation; the page itself is rendered by `raylabel.report`."""

from __future__ import annotations

from typing import Any

from raylabel.io import layout, listing, storage
from raylabel.io.storage import StorageOptions
from raylabel.report.morning_page import MAX_NIGHTS, render_morning
from raylabel.review.evaluate import latest_evaluation

PAGE = "index.html"


def gather_nights(root: str, opts: StorageOptions) -> list[dict[str, Any]]:
    """The newest nights (newest first), each done drop with its run's counts, model and
    newest evaluation (reviews can land days after the night that labeled the run)."""
    base = storage.join(root, "nightly")
    if not storage.exists(base, opts):
        return []
    files = listing.list_files(base, opts, recursive=False, extensions=[".json"])
    files.sort(key=lambda f: f.rel_path, reverse=True)  # night ids sort by time
    nights = []
    for f in files[:MAX_NIGHTS]:
        night = storage.read_json(f.uri, opts)
        for drop in night.get("drops", []):
            if drop.get("status") == "done" and drop.get("run_id"):
                _enrich(root, drop, opts)
        nights.append(night)
    return nights


def _enrich(root: str, drop: dict[str, Any], opts: StorageOptions) -> None:
    """The night recorded the run's counts; only nights written before it did need the
    run's summary. The evaluation is read every time: reviews arrive after the night."""
    run = layout.RunLayout(root, drop["drop"], drop["run_id"])
    try:
        if not drop.get("counts"):
            drop["counts"] = storage.read_json(run.path("summary.json"), opts).get("counts", {})
        drop["evaluation"] = latest_evaluation(run, opts)
    except Exception as exc:  # a page must not fail the night; say what is missing
        drop["detail"] = f"{drop.get('detail', '')} (run details unavailable: {exc})"[:300]


def write_morning_page(root: str, opts: StorageOptions) -> str:
    """Regenerate `nightly/index.html` from every night so far; returns its URI."""
    uri = storage.join(root, "nightly", PAGE)
    storage.write_text(uri, render_morning(gather_nights(root, opts)), opts)
    return uri
