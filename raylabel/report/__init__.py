"""HTML reports rendered from plain dicts (summary.json, audit.json): self-contained pages
with inline PNG plots; nothing here reads storage or Ray.

Modules, bottom up (each imports only those above it in this list):

- :mod:`~raylabel.report.kit`: value formatting, HTML building blocks and the stylesheet;
- :mod:`~raylabel.report.plots`: off-screen matplotlib figures embedded as data URIs;
- sections: :mod:`~raylabel.report.overview`, :mod:`~raylabel.report.trust`,
  :mod:`~raylabel.report.distributions`, :mod:`~raylabel.report.multilabel`,
  :mod:`~raylabel.report.watch`, :mod:`~raylabel.report.review_sample`,
  :mod:`~raylabel.report.evaluation`,
  :mod:`~raylabel.report.errors`, :mod:`~raylabel.report.run_details` and
  :mod:`~raylabel.report.audit_page` (which is also the audit's own page);
- :mod:`~raylabel.report.run_page`: assembles the run report from the sections.
"""

from __future__ import annotations

from typing import Any


def render_html(summary: dict[str, Any]) -> str:
    """Callers that write a run's report.html need one stable entry point into this package."""
    from raylabel.report.run_page import render

    return render(summary)
