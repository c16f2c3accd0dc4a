"""`raylabel sample`: redraw the review sample of a committed run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from raylabel.config import Config
from raylabel.io.layout import RunLayout
from raylabel.review.runs import rewrite_summary, run_context


@dataclass
class RedrawResult:
    """The redrawn sample of a committed run."""

    run: RunLayout
    info: dict[str, Any]

    def summary_lines(self) -> list[str]:
        """Sample size, strata and where the files are."""
        info, run = self.info, self.run
        return [
            f"review sample of {run.drop}/{run.run_id}: {info['size']} items in "
            f"{info['strata']} strata (seed {info['seed']}, {info['allocation_method']}); "
            f"uncertain list: {info['uncertain']}",
            f"files: {run.review_dir}",
        ]


def resample(cfg: Config) -> RedrawResult:
    """Redraw the review sample of a committed run (new review.size / seed / allocation)."""
    from raylabel import cluster
    from raylabel.review.draw import draw_review

    run, summary, card, opts = run_context(cfg)
    cluster.connect(cfg)
    cluster.quiet_data_context()
    stats = {"strata": summary["strata"], "hist": summary["confidence_histogram"]["per_class"]}
    info = draw_review(cfg, run, card, stats, opts)
    summary["review"] = info
    summary.pop("evaluation", None)
    rewrite_summary(run, summary, opts)
    return RedrawResult(run, info)
