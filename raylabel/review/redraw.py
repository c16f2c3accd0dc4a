"""`raylabel sample`: redraw the review sample of a committed run.

A committed run never changes: the redraw is a folder of its own,
`<run>/redraws/<id>/review/`, committed with `_SUCCESS` and `redraws/LATEST`. `evaluate`
then joins reviews to the newest committed redraw (or the run's own sample if none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from raylabel.config import Config
from raylabel.io import layout, storage
from raylabel.io.layout import RunLayout
from raylabel.review.runs import run_context

REDRAWS = "redraws"


@dataclass
class RedrawResult:
    """The redrawn sample of a committed run."""

    run: RunLayout
    info: dict[str, Any]
    folder: str

    def summary_lines(self) -> list[str]:
        """Sample size, strata and where the files are."""
        info, run = self.info, self.run
        return [
            f"review sample of {run.drop}/{run.run_id}: {info['size']} items in "
            f"{info['strata']} strata (seed {info['seed']}, {info['allocation_method']}); "
            f"uncertain list: {info['uncertain']}",
            f"files: {storage.join(self.folder, 'review')} (the run itself is unchanged)",
        ]


def resample(cfg: Config) -> RedrawResult:
    """Redraw the review sample of a committed run (new review.size / seed / allocation)."""
    from raylabel import cluster
    from raylabel.review.by_task import draw_review

    run, summary, card, opts = run_context(cfg)
    cluster.connect(cfg)
    cluster.quiet_data_context()
    hist = summary.get("confidence_histogram", {}).get("per_class", {})  # none: multilabel
    stats = {"strata": summary.get("strata") or {}, "hist": hist}
    rev_id = layout.new_id("s-")
    folder = run.path(REDRAWS, rev_id)
    info = draw_review(cfg, run, card, stats, opts, review_dir=storage.join(folder, "review"))
    storage.write_json(
        storage.join(folder, "redraw.json"),
        {"run_id": run.run_id, "drop": run.drop, "redrawn_at": layout.utc_now().isoformat(),
         "review": info},
        opts,
    )  # fmt: skip
    layout.commit_revision(run, REDRAWS, rev_id, opts)
    return RedrawResult(run, info, folder)


def sample_dir(run: RunLayout, opts: Any) -> str:
    """Where the run's current review sample lives: the newest committed redraw's, else the
    run's own."""
    newest = layout.latest_revision(run, REDRAWS, opts)
    return storage.join(newest, "review") if newest else run.review_dir


def review_files(run: RunLayout, name: str, opts: Any) -> list[str]:
    """The existing copies of one review file, newest first: the current sample's folder
    (a redraw's), then the run's own (which alone holds the queue a redraw left as it was)."""
    folders = dict.fromkeys((sample_dir(run, opts), run.review_dir))
    uris = [storage.join(f, name) for f in folders]
    return [u for u in uris if storage.exists(u, opts)]
