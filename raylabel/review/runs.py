"""Committed runs the review stages work on (`sample`, `evaluate`): found, read, refused
when not committed."""

from __future__ import annotations

from typing import Any

from raylabel.config import Config
from raylabel.inputs import sources
from raylabel.io import layout, storage
from raylabel.io.layout import RunLayout
from raylabel.io.storage import StorageOptions
from raylabel.models.card import read_card_uri


def committed_run(cfg: Config) -> RunLayout:
    """`run.run_id` of the drop, or its LATEST committed run; uncommitted runs are refused."""
    opts = sources.storage_options(cfg)
    drop = sources.drop_name(cfg)
    run_id = cfg.run.run_id or layout.latest_run(cfg.output.root, drop, opts)
    if not run_id:
        raise storage.InputNotFound(
            f"no committed run for drop {drop!r} under {storage.join(cfg.output.root, 'runs')}"
        )
    if not layout.is_committed(cfg.output.root, drop, run_id, opts):
        raise storage.InputNotFound(f"run.run_id: run {run_id} of {drop!r} is not committed")
    return RunLayout(cfg.output.root, drop, run_id)


def run_context(cfg: Config) -> tuple[RunLayout, dict[str, Any], Any, StorageOptions]:
    """What `sample` and `evaluate` start from: the committed run, its summary, the card of the
    model that labeled it (not the latest model), and storage options."""
    opts = sources.storage_options(cfg)
    run = committed_run(cfg)
    summary = storage.read_json(run.path("summary.json"), opts)
    card = read_card_uri(layout.model_uri(cfg.output.root, summary["model_version"]), opts)
    return run, summary, card, opts
