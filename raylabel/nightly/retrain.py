"""Tonight's model: keep the current one, or retrain when due, past the promotion gate,
and go on with the current model when the retrain fails."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from raylabel.config import Config
from raylabel.errors import first_line
from raylabel.io import layout, listing, storage
from raylabel.io.storage import StorageOptions
from raylabel.models.card import read_card_uri


@dataclass
class ModelChoice:
    """The model tonight labels with, and what the retrain (if any) did."""

    version: str | None
    retrained: bool
    reason: str
    candidate: str | None = None  # the retrained version, promoted or not
    promotion: dict[str, Any] | None = None  # the gate's verdict from the candidate's card
    failure: str | None = None  # why the retrain failed (the night went on without it)

    def lines(self) -> list[str]:
        """The model part of the nightly summary."""
        if self.failure:
            return [
                f"model {self.version} (retrain failed: {self.failure}; labeled with the "
                "current model)"
            ]
        if not self.retrained:
            return [f"model {self.version} ({self.reason})"]
        gate = (self.promotion or {}).get("reason", "promoted")
        return [f"model {self.version} (retrained {self.candidate}: {self.reason}; {gate})"]


def new_feedback(cfg: Config, opts: StorageOptions, since: datetime) -> int:
    """Reviewed items written to feedback/ after the model was trained."""
    import pyarrow.parquet as pq

    base = storage.join(cfg.output.root, "feedback")
    if not storage.exists(base, opts):
        return 0
    fs, _ = storage.resolve(base, opts)
    total = 0
    for f in listing.list_files(base, opts, extensions=[".parquet"]):
        path = storage.resolve(f.uri, opts)[1]
        mtime = fs.get_file_info(path).mtime
        if mtime is not None and mtime.timestamp() > since.timestamp():
            total += pq.read_metadata(path, filesystem=fs).num_rows
    return total


def retrain_decision(cfg: Config, opts: StorageOptions) -> tuple[bool, str, str | None]:
    """(retrain?, why, current model version)."""
    if cfg.run.model_version:
        return False, "pinned by run.model_version", cfg.run.model_version
    version = layout.latest_model(cfg.output.root, opts)
    if not version:
        return True, "no model yet", None
    card = read_card_uri(layout.model_uri(cfg.output.root, version), opts)
    created = datetime.fromisoformat(card.created_at)
    age = layout.utc_now() - created
    if age > timedelta(days=cfg.nightly.max_model_age_days):
        return True, f"model is {age.days} days old (max {cfg.nightly.max_model_age_days})", version
    fresh = new_feedback(cfg, opts, created)
    if fresh >= cfg.nightly.retrain_min_feedback:
        return (
            True,
            f"{fresh} new reviewed items since the model (>= {cfg.nightly.retrain_min_feedback})",
            version,
        )
    return False, f"model is current ({fresh} new reviewed items, {age.days} days old)", version


def choose_model(cfg: Config, opts: StorageOptions) -> ModelChoice:
    """Retrain when due; a candidate the gate refuses is published but tonight labels with
    the current model. A failed retrain with a current model is recorded, not fatal; with
    no model at all the night cannot label and fails."""
    from raylabel.train import train

    retrain, why, current = retrain_decision(cfg, opts)
    if not retrain:
        return ModelChoice(current, False, why)
    try:
        cfg.require("seed.path")
        result = train(dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, run_id=None)))
    except Exception as exc:
        if current is None:
            raise
        return ModelChoice(current, False, why, failure=f"{type(exc).__name__}: {first_line(exc)}")
    gate = result.card.training.get("promotion") or {"promoted": True}
    version = result.model_version if gate.get("promoted", True) else current
    return ModelChoice(version, True, why, result.model_version, gate)
