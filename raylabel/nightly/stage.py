"""The nightly job: every ready drop under drops.root brought up to date, retraining first
when due; one account of the night, and the morning page.

Idempotent by construction: a drop whose inputs did not change since its committed run is
left alone (`label` compares listing fingerprints), so re-running the same night does
nothing; a drop that grew gets a new complete run carrying its unchanged items. Each drop
is processed under a lease object with an expiry, so two nightly runs never label the same
drop at once and a crashed run does not block the next night for longer than
`nightly.lock_ttl_s`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from raylabel.config import Config
from raylabel.errors import first_line
from raylabel.inputs import sources
from raylabel.io import layout, storage
from raylabel.io.atomic import refuse_stores_without_exclusive_create
from raylabel.io.lease import Lease
from raylabel.io.storage import StorageOptions
from raylabel.label.drift import verdict_line
from raylabel.nightly.drops import drop_folders, drop_uri, waiting_reason
from raylabel.nightly.retrain import ModelChoice, choose_model
from raylabel.review.ls_api import api_key_from_env

STATUSES = ("done", "skipped", "waiting", "locked", "failed")


@dataclass
class DropOutcome:
    """What happened to one drop tonight, so every drop is accounted for in the night's summary."""

    drop: str
    status: str  # one of STATUSES; "skipped" = up to date (inputs unchanged)
    detail: str = ""
    run_id: str | None = None
    drift: str | None = None  # the run's drift verdict (raylabel.drift), when labeled
    counts: dict[str, Any] = field(default_factory=dict)  # the run's counts, when labeled
    review: str | None = None  # the Label Studio push of the run's review tasks, when set up


@dataclass
class NightlyResult:
    """The night's account: the model used, whether and why it was retrained, and every drop's
    outcome."""

    night_id: str
    model: ModelChoice
    outcomes: list[DropOutcome] = field(default_factory=list)
    summary_uri: str = ""
    page_uri: str = ""

    @property
    def model_version(self) -> str | None:
        """The model tonight labeled with."""
        return self.model.version

    @property
    def retrained(self) -> bool:
        """Whether a retrain ran (and finished) tonight, promoted or not."""
        return self.model.retrained

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
        each drop that was not already up to date."""
        lines = [
            f"nightly {self.night_id}: {self.count('done')} done, {self.count('skipped')} skipped "
            f"(up to date), {self.count('waiting')} waiting, {self.count('locked')} locked by "
            f"another run, {len(self.failed)} failed",
            *self.model.lines(),
        ]
        for o in self.outcomes:
            if o.status != "skipped":
                lines.append(f"  {o.drop}: {o.status}{' - ' + o.detail if o.detail else ''}")
            if o.review and (o.status != "skipped" or "failed" in o.review):
                lines.append(f"  {o.drop}: review tasks {o.review}")
        lines.append(f"summary: {self.summary_uri}")
        if self.page_uri:
            lines.append(f"morning page: {self.page_uri}")
        return lines


def _holding(lease: Lease) -> Callable[[], None]:
    """The label stage's last check before it commits: the drop's lease is still ours."""

    def check() -> None:
        if lease.lost:
            raise RuntimeError(
                f"lease {lease.folder} was taken over while labeling; nothing committed"
            )

    return check


def _drop_config(cfg: Config, name: str, folder: str, version: str | None) -> Config:
    drop = dataclasses.replace(cfg.drop, path=drop_uri(cfg, folder), name=name)
    run = dataclasses.replace(cfg.run, model_version=version, run_id=None)
    return dataclasses.replace(cfg, drop=drop, run=run)


def nightly(cfg: Config) -> NightlyResult:
    """One night: bring every ready drop up to date, retraining first when due; a failing
    drop is recorded while the others go on, and the night's summary lists every drop."""
    cfg.require("drops.root")
    if cfg.review.labelstudio.url:
        api_key_from_env()  # a missing key stops the night before any work, not after it
    opts = sources.storage_options(cfg)
    refuse_stores_without_exclusive_create(cfg.output.root, opts)  # leases rely on it
    night_id = layout.new_id("n-")
    folders = drop_folders(cfg, opts)
    outcomes: list[DropOutcome] = []
    ready: dict[str, str] = {}
    for name, folder in folders.items():
        why = waiting_reason(cfg, folder, opts)
        if why:
            outcomes.append(DropOutcome(name, "waiting", why))
        else:
            ready[name] = folder
    if ready:
        choice = choose_model(cfg, opts)
    else:
        current = cfg.run.model_version or layout.latest_model(cfg.output.root, opts)
        choice = ModelChoice(current, False, "no drop ready")
    for name, folder in ready.items():
        outcome = _one_drop(cfg, name, folder, choice.version, opts)
        if cfg.review.labelstudio.url and outcome.run_id:
            outcome.review = _push_review(cfg, name, folder, outcome.run_id)
        outcomes.append(outcome)
    return _finish(cfg, NightlyResult(night_id, choice, outcomes), opts)


def _one_drop(
    cfg: Config, name: str, folder: str, version: str | None, opts: StorageOptions
) -> DropOutcome:
    """Label one drop under its lease; any failure becomes this drop's outcome only."""
    from raylabel.label import label

    lease = Lease(cfg.output.root, name, cfg.nightly.lock_ttl_s, opts)
    if not lease.acquire():
        return DropOutcome(name, "locked", "another nightly run holds its lease")
    try:
        with lease.keep_alive():  # renewed while labeling; checked before the commit
            res = label(
                _drop_config(cfg, name, folder, version),
                guard=_holding(lease),
                new_inputs_only=True,
            )
        if res.skipped:
            return DropOutcome(name, "skipped", run_id=res.run_id)
        c = res.summary.get("counts", {})
        drift_info = res.summary.get("drift") or {}
        carried = f"{c.get('reused', 0)} reused + {c.get('inferred', 0)} inferred"
        if c.get("removed"):
            carried += f", {c['removed']} removed"
        return DropOutcome(
            name,
            "done",
            f"{c.get('labeled', 0)} labeled, {c.get('errors', 0)} errors, "
            f"{c.get('accepted', 0)} accepted ({carried}); {verdict_line(drift_info)}",
            res.run_id,
            drift_info.get("verdict"),
            {
                k: c.get(k)
                for k in ("input", "labeled", "errors", "accepted", "reused", "inferred", "removed")
            },
        )
    except Exception as exc:  # one bad drop must not stop the others
        return DropOutcome(name, "failed", f"{type(exc).__name__}: {first_line(exc)}")
    finally:
        lease.release()


def _push_review(cfg: Config, name: str, folder: str, run_id: str) -> str:
    """Publish the run's review tasks to the drop's Label Studio project. Idempotent, so an
    up-to-date drop whose push failed last night is pushed again; a failure is reported on
    the drop, never fails its committed labels."""
    from raylabel.review import push_review

    drop_cfg = _drop_config(cfg, name, folder, None)
    drop_cfg = dataclasses.replace(drop_cfg, run=dataclasses.replace(drop_cfg.run, run_id=run_id))
    try:
        pushed = push_review(drop_cfg)
    except Exception as exc:  # the labels are committed: report, retry next night
        return f"push failed: {type(exc).__name__}: {first_line(exc)}"
    return (
        f"pushed {sum(pushed.sent.values())} to Label Studio project {pushed.title!r} "
        f"({pushed.already} already there)"
    )


def _finish(cfg: Config, result: NightlyResult, opts: StorageOptions) -> NightlyResult:
    """The night's JSON under nightly/, then the morning page regenerated from every night."""
    from raylabel.nightly.morning import write_morning_page

    uri = storage.join(cfg.output.root, "nightly", f"{result.night_id}.json")
    m = result.model
    body: dict[str, Any] = {
        "night_id": result.night_id,
        "model_version": m.version,
        "retrained": m.retrained,
        "retrain_reason": m.reason,
        "candidate": m.candidate,
        "promotion": m.promotion,
        "retrain_failed": m.failure,
        "drops": [dataclasses.asdict(o) for o in result.outcomes],
        "counts": {s: result.count(s) for s in STATUSES},
        "drift": {
            v: sum(1 for o in result.outcomes if o.drift == v)
            for v in sorted({o.drift for o in result.outcomes if o.drift})
        },
        "finished_at": layout.utc_now().isoformat(),
    }
    storage.write_json(uri, body, opts)
    result.summary_uri = uri
    result.page_uri = write_morning_page(cfg.output.root, opts)
    return result
