"""`raylabel review push` and `review.reviewed=labelstudio`: a run's review tasks go to a Label
Studio project and its annotations come back without files passing hands.

One project per drop (`review.labelstudio.project`, default ``raylabel <drop>``) holds the
tasks of every run; each task's data names its ``run_id`` and which list it came from
(``sample`` or ``uncertain``), so a push is idempotent (tasks already there are skipped) and
`evaluate` reads only the annotations of the run it evaluates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from raylabel.config import Config
from raylabel.errors import ReviewError
from raylabel.io import storage
from raylabel.io.layout import RunLayout
from raylabel.io.storage import StorageOptions
from raylabel.review.ls_api import LabelStudioClient, api_key_from_env
from raylabel.review.redraw import review_files, sample_dir
from raylabel.review.runs import run_context

#: the review files a push sends, and the list name each task records
TASK_FILES = (("labelstudio.json", "sample"), ("uncertain_labelstudio.json", "uncertain"))


@dataclass
class PushResult:
    """What one push did to the project."""

    run: RunLayout
    url: str
    project_id: int
    title: str
    sent: dict[str, int]
    already: int

    def summary_lines(self) -> list[str]:
        """Counts per list, and where reviewers find the tasks."""
        total = sum(self.sent.values())
        return [
            f"pushed {total} review task(s) of {self.run.drop}/{self.run.run_id} to Label "
            f"Studio project {self.title!r} (id {self.project_id}): sample "
            f"{self.sent.get('sample', 0)}, uncertain queue {self.sent.get('uncertain', 0)}; "
            f"{self.already} already there",
            f"reviewers: {self.url.rstrip('/')}/projects/{self.project_id}/data",
            "then: raylabel evaluate review.reviewed=labelstudio (same drop and run)",
        ]


def client_for(cfg: Config) -> LabelStudioClient:
    """The configured server with the key from the environment (refused before any call)."""
    ls = cfg.review.labelstudio
    if not ls.url:
        raise ReviewError("review.labelstudio.url: not set (the Label Studio server)")
    return LabelStudioClient(ls.url, api_key_from_env(), ls.timeout_s)


def project_title(cfg: Config, run: RunLayout) -> str:
    """The project of the run's drop."""
    return cfg.review.labelstudio.project or f"raylabel {run.drop}"


def push_review(cfg: Config) -> PushResult:
    """Create or update the drop's project and import the run's review tasks not yet there."""
    client = client_for(cfg)
    run, _, _, opts = run_context(cfg)
    folder = sample_dir(run, opts)
    config_xml = storage.read_bytes(storage.join(folder, "labelstudio_config.xml"), opts).decode()
    title = project_title(cfg, run)
    project = client.ensure_project(
        title, config_xml, f"raylabel review tasks of drop {run.drop} (model versions vary)"
    )
    pid = int(project["id"])
    present = {_key(t.get("data") or {}) for t in client.export(pid)}
    new: list[dict[str, Any]] = []
    sent: dict[str, int] = {}
    already = 0
    for name, review_list in TASK_FILES:
        for task in _read_tasks(run, name, opts):
            task["data"].update(run_id=run.run_id, review=review_list)
            if _key(task["data"]) in present:
                already += 1
                continue
            present.add(_key(task["data"]))
            new.append(task)
            sent[review_list] = sent.get(review_list, 0) + 1
    client.import_tasks(pid, new, cfg.review.labelstudio.batch)
    return PushResult(run, cfg.review.labelstudio.url or "", pid, title, sent, already)


def _key(data: dict[str, Any]) -> tuple[str, str]:
    return str(data.get("run_id", "")), str(data.get("item_id", ""))


def _read_tasks(run: RunLayout, name: str, opts: StorageOptions) -> list[dict]:
    """One tasks file of the current sample (the queue may live in the run's own folder)."""
    for uri in review_files(run, name, opts)[:1]:
        tasks = json.loads(storage.read_bytes(uri, opts))
        return [t for t in tasks if isinstance(t, dict) and isinstance(t.get("data"), dict)]
    return []


def pull_reviews(cfg: Config, run: RunLayout) -> tuple[bytes, str]:
    """The run's tasks with their annotations from the drop's project, as a Label Studio JSON
    export `parse_reviews` reads, and a name for messages."""
    client = client_for(cfg)
    title = project_title(cfg, run)
    project = client.find_project(title)
    if project is None:
        raise ReviewError(
            f"review.labelstudio.project: no project {title!r} at {cfg.review.labelstudio.url} "
            "(run `raylabel review push` first)"
        )
    tasks = [
        t
        for t in client.export(int(project["id"]))
        if str((t.get("data") or {}).get("run_id", "")) == run.run_id
    ]
    if not tasks:
        raise ReviewError(
            f"review.reviewed: project {title!r} holds no task of run {run.run_id} "
            "(push this run's tasks first)"
        )
    name = f"{cfg.review.labelstudio.url}/projects/{project['id']} (run {run.run_id})"
    return json.dumps(tasks).encode(), name
