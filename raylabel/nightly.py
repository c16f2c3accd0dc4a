"""The nightly job: find drops without a committed run, retrain when due, label each one.

Idempotent by construction: a drop with a committed run (`LATEST` -> `_SUCCESS`) is
skipped, so re-running the same night does nothing. Each drop is processed under a
lease object with an expiry, so two nightly runs never label the same drop at once and
a crashed run does not block the next night for longer than `nightly.lock_ttl_s`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from raylabel.config import Config
from raylabel.errors import InputError, redact
from raylabel.inputs import sources
from raylabel.io import layout, listing, storage
from raylabel.io.lease import Lease
from raylabel.io.storage import StorageOptions
from raylabel.label.drift import verdict_line
from raylabel.models.card import read_card_uri


@dataclass
class DropOutcome:
    """What happened to one drop tonight, so every drop is accounted for in the night's summary."""

    drop: str
    status: str  # "done" | "skipped" | "failed" | "locked"
    detail: str = ""
    run_id: str | None = None
    drift: str | None = None  # the run's drift verdict (raylabel.drift), when labeled


@dataclass
class NightlyResult:
    """The night's account: the model used, whether and why it was retrained, and every drop's
    outcome."""

    night_id: str
    model_version: str | None
    retrained: bool
    retrain_reason: str
    outcomes: list[DropOutcome] = field(default_factory=list)
    summary_uri: str = ""

    @property
    def failed(self) -> list[DropOutcome]:
        """The drops that failed; the CLI exits 1 when there are any, though the other drops were
        still labeled."""
        return [o for o in self.outcomes if o.status == "failed"]

    def count(self, status: str) -> int:
        """Drops with one status, for the summary lines and the night's JSON."""
        return sum(1 for o in self.outcomes if o.status == status)

    def summary_lines(self) -> list[str]:
        """What `raylabel nightly` prints: totals, the model and why it was (not) retrained, and
        each drop that was not skipped."""
        lines = [
            f"nightly {self.night_id}: {self.count('done')} done, {self.count('skipped')} skipped "
            f"(already committed), {self.count('locked')} locked by another run, "
            f"{len(self.failed)} failed",
            f"model {self.model_version} "
            + (
                f"(retrained: {self.retrain_reason})"
                if self.retrained
                else f"({self.retrain_reason})"
            ),
        ]
        for o in self.outcomes:
            if o.status != "skipped":
                lines.append(f"  {o.drop}: {o.status}{' - ' + o.detail if o.detail else ''}")
        lines.append(f"summary: {self.summary_uri}")
        return lines


def drop_folders(cfg: Config, opts: StorageOptions) -> dict[str, str]:
    """Run name -> folder for every drop under drops.root; two folders that become the same
    run name ("night 1", "night_1") stop the night before any work, naming both."""
    root = cfg.drops.root or ""
    listing.check_input(root, opts, "drops.root")
    folders: dict[str, str] = {}
    for folder in listing.list_dirs(root, opts):
        name = sources.safe_drop_name(folder)
        if not name:
            raise InputError(f"drops.root: cannot name a run after the folder {folder!r}")
        if name in folders:
            raise InputError(
                f"drops.root: drops {folders[name]!r} and {folder!r} would both be named "
                f"{name!r}; rename one of them"
            )
        folders[name] = folder
    return folders


def pending_drops(
    cfg: Config, opts: StorageOptions, folders: dict[str, str] | None = None
) -> tuple[list[str], list[str]]:
    """(pending, committed) drop run names under drops.root."""
    pending, done = [], []
    for name in folders if folders is not None else drop_folders(cfg, opts):
        (done if layout.latest_run(cfg.output.root, name, opts) else pending).append(name)
    return pending, done


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
        info = fs.get_file_info(path)
        mtime = info.mtime
        if mtime is not None and mtime.timestamp() > since.timestamp():
            total += pq.read_metadata(path, filesystem=fs).num_rows
    return total


def retrain_decision(cfg: Config, opts: StorageOptions) -> tuple[bool, str, str | None]:
    """(retrain?, why, current model version)."""
    version = cfg.run.model_version or layout.latest_model(cfg.output.root, opts)
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


def _holding(lease: Lease) -> Callable[[], None]:
    """The label stage's last check before it commits: the drop's lease is still ours."""

    def check() -> None:
        if lease.lost:
            raise RuntimeError(
                f"lease {lease.folder} was taken over while labeling; nothing committed"
            )

    return check


def _drop_config(cfg: Config, name: str, folder: str, version: str | None) -> Config:
    drop = dataclasses.replace(cfg.drop, path=storage.join(cfg.drops.root or "", folder), name=name)
    run = dataclasses.replace(cfg.run, model_version=version, run_id=None)
    return dataclasses.replace(cfg, drop=drop, run=run)


def nightly(cfg: Config) -> NightlyResult:
    """One night: label every drop without a committed run, retraining first when due; a failing
    drop is recorded while the others go on, and the night's summary lists every drop."""
    from raylabel.label import label
    from raylabel.train import train

    cfg.require("drops.root")
    opts = sources.storage_options(cfg)
    night_id = layout.new_id("n-")
    folders = drop_folders(cfg, opts)
    pending, done = pending_drops(cfg, opts, folders)
    outcomes = [DropOutcome(d, "skipped") for d in done]
    if not pending:
        version = cfg.run.model_version or layout.latest_model(cfg.output.root, opts)
        result = NightlyResult(night_id, version, False, "nothing to do", outcomes)
        return _write_summary(cfg, result, opts)
    retrain, why, version = retrain_decision(cfg, opts)
    if retrain:
        cfg.require("seed.path")
        version = train(cfg).model_version
    for name in pending:
        lease = Lease(cfg.output.root, name, cfg.nightly.lock_ttl_s, opts)
        if not lease.acquire():
            outcomes.append(DropOutcome(name, "locked", "another nightly run holds its lease"))
            continue
        try:
            if layout.latest_run(cfg.output.root, name, opts):  # committed while we waited
                outcomes.append(DropOutcome(name, "skipped"))
                continue
            with lease.keep_alive():  # renewed while labeling; checked before the commit
                res = label(_drop_config(cfg, name, folders[name], version), guard=_holding(lease))
            c = res.summary.get("counts", {})
            drift_info = res.summary.get("drift") or {}
            outcomes.append(
                DropOutcome(
                    name,
                    "done",
                    f"{c.get('labeled', 0)} labeled, {c.get('errors', 0)} errors, "
                    f"{c.get('accepted', 0)} accepted; {verdict_line(drift_info)}",
                    res.run_id,
                    drift_info.get("verdict"),
                )
            )
        except Exception as exc:  # one bad drop must not stop the others
            msg = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
            outcomes.append(DropOutcome(name, "failed", f"{type(exc).__name__}: {msg}"))
        finally:
            lease.release()
    result = NightlyResult(night_id, version, retrain, why, outcomes)
    return _write_summary(cfg, result, opts)


def _write_summary(cfg: Config, result: NightlyResult, opts: StorageOptions) -> NightlyResult:
    uri = storage.join(cfg.output.root, "nightly", f"{result.night_id}.json")
    body: dict[str, Any] = {
        "night_id": result.night_id,
        "model_version": result.model_version,
        "retrained": result.retrained,
        "retrain_reason": result.retrain_reason,
        "drops": [dataclasses.asdict(o) for o in result.outcomes],
        "counts": {s: result.count(s) for s in ("done", "skipped", "locked", "failed")},
        "drift": {
            v: sum(1 for o in result.outcomes if o.drift == v)
            for v in sorted({o.drift for o in result.outcomes if o.drift})
        },
        "finished_at": layout.utc_now().isoformat(),
    }
    storage.write_json(uri, body, opts)
    result.summary_uri = uri
    return result
