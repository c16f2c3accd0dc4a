"""The errors section of the run report: failures per pipeline stage and a few examples
(ids and messages are user data, escaped like everything else)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from raylabel.report import plots
from raylabel.report.kit import (
    MAX_TABLE_ROWS,
    Html,
    as_dict,
    as_list,
    e,
    fint,
    fpct,
    ratio,
    section,
    table,
    to_int,
)
from raylabel.report.plots import C_TARGET, figure, plot

_SKIP_WORDS = {
    "marker": "state markers (_SUCCESS, _temporary/, ...)",
    "os_metadata": "operating-system metadata (.DS_Store, __MACOSX/, ...)",
    "extension": "files of other types (extension filter)",
}


def _skipped_note(skipped: Mapping[str, Any]) -> str:
    """Files in the drop that were not items: counted by reason, never silently dropped."""
    rows = [(_SKIP_WORDS.get(str(k), str(k)), fint(v)) for k, v in sorted(skipped.items())]
    if not rows:
        return ""
    return "<h3>Files that are not items</h3>" + table(["reason", "files"], rows, num={1})


def sec_errors(s: Mapping[str, Any]) -> str:
    """Failed items are dropped from the labels, so the report must say how many, where and why."""
    counts = as_dict(s.get("counts"))
    by_stage = {str(k): to_int(v) or 0 for k, v in as_dict(s.get("errors_by_stage")).items()}
    examples = [x for x in as_list(s.get("error_examples")) if isinstance(x, Mapping)]
    total = to_int(counts.get("errors"))
    skipped = _skipped_note(as_dict(counts.get("skipped")))
    if not total and not any(by_stage.values()) and not examples:
        return section("errors", "Errors", "<p>No items failed.</p>" + skipped)
    parts = [plot("errors by stage", _plot_errors, s), skipped]
    if by_stage:
        n_in = counts.get("input")
        parts.append(
            table(
                ["stage", "failed items", "share of input"],
                [
                    (k, fint(n), fpct(ratio(n, n_in), 2))
                    for k, n in sorted(by_stage.items(), key=lambda kv: -kv[1])
                ],
                num={1, 2},
            )
        )
    if examples:
        parts.append("<h3>Examples</h3>")
        rows = []
        for x in examples[:MAX_TABLE_ROWS]:
            msg = str(x.get("error") if x.get("error") is not None else "")
            if len(msg) > 500:
                msg = msg[:500] + " …"
            rows.append(
                (
                    Html(f"<code>{e(x.get('item_id'))}</code>"),
                    x.get("stage"),
                    Html(f"<code>{e(msg)}</code>"),
                )
            )
        parts.append(table(["item id", "stage", "error"], rows, col_class={0: "id", 2: "msg"}))
        parts.append(
            '<p class="note">A sample only; every failure is listed in the run\'s '
            "<code>errors/</code> parquet files.</p>"
        )
    return section("errors", "Errors", "".join(parts))


def _plot_errors(s: Mapping[str, Any]) -> tuple[Any, str] | None:
    """Horizontal bars of failed items per pipeline stage."""
    rows = [(str(k), to_int(v) or 0) for k, v in as_dict(s.get("errors_by_stage")).items()]
    rows = sorted((r for r in rows if r[1] > 0), key=lambda r: -r[1])[: plots.MAX_PLOT_CLASSES]
    if not rows:
        return None
    fig, axes = figure(7.0, 0.9 + 0.38 * len(rows))
    ax = axes[0][0]
    y = list(range(len(rows)))
    ax.barh(y, [r[1] for r in rows], color=C_TARGET, alpha=0.8, height=0.6)
    ax.set_yticks(y, [r[0] for r in rows])
    ax.invert_yaxis()
    top = max(r[1] for r in rows)
    for i, (_, n) in enumerate(rows):
        ax.text(n + top * 0.01, i, f"{n:,}", va="center", fontsize=8)
    ax.set_xlim(0, top * 1.12)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel("failed items")
    ax.set_ylabel("stage")
    ax.set_title("Errors by pipeline stage")
    return fig, ""
