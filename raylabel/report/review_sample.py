"""The review-sample section of the run report: how many items go to reviewers, how they
were spread over strata, and which files to hand over."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from raylabel.report.kit import (
    DASH,
    MAX_TABLE_ROWS,
    Html,
    as_dict,
    class_names,
    e,
    fint,
    fpct,
    kv,
    ratio,
    section,
    table,
    to_int,
)


def _split_stratum(key: str) -> tuple[str, str]:
    """``"<label>|<lo>-<hi>"`` -> (label, "lo–hi"); the label itself may contain '|'."""
    label, sep, rng = key.rpartition("|")
    return (label, rng.replace("-", "–")) if sep else (key, "")


def sec_review(s: Mapping[str, Any]) -> str:
    """Reviewers need the sample's size, its spread over strata and the files to open."""
    r = s.get("review")
    if not isinstance(r, Mapping):
        return ""
    parts = [
        kv(
            [
                ("Sample size", fint(r.get("size"))),
                ("Requested", fint(r.get("requested")) if "requested" in r else None),
                ("Strata with reviews", fint(r.get("strata")) if "strata" in r else None),
                ("Allocation", r.get("allocation_method")),
                ("Seed", r.get("seed")),
                (
                    "Most-uncertain items listed",
                    fint(r.get("uncertain")) if "uncertain" in r else None,
                ),
            ]
        )
    ]
    files = as_dict(r.get("files"))
    if files:
        parts.append("<h3>Files for reviewers</h3>")
        parts.append(
            table(
                ["file", "location"],
                [(k, Html(f"<code>{e(v)}</code>")) for k, v in files.items()],
            )
        )
    alloc = as_dict(r.get("allocation"))
    pops = as_dict(s.get("strata"))
    order = {c: i for i, c in enumerate(class_names(s))}

    def by_class(k: Any) -> tuple[int, str, str]:
        label, rng = _split_stratum(str(k))
        return order.get(label, len(order)), label, rng

    keys = sorted(set(alloc) | set(pops), key=by_class)
    if keys:
        parts.append("<h3>Allocation over strata (predicted class × confidence bin)</h3>")
        note = ""
        if len(keys) > MAX_TABLE_ROWS:
            note = (
                f'<p class="note">Showing {MAX_TABLE_ROWS} of {len(keys)} strata (most '
                "reviews first).</p>"
            )
            keys = sorted(keys, key=lambda k: -(to_int(alloc.get(k)) or 0))[:MAX_TABLE_ROWS]
        rows = []
        for k in keys:
            label, rng = _split_stratum(str(k))
            n, pop = to_int(alloc.get(k)), to_int(pops.get(k))
            rows.append((label, rng, fint(pop), fint(n or 0), fpct(ratio(n, pop)) if n else DASH))
        parts.append(
            table(["class", "confidence", "population", "reviews", "sampled"], rows, num={2, 3, 4})
        )
        parts.append(note)
        parts.append(
            '<p class="note">Each stratum is sampled at random, so estimates weight '
            "its reviews by population / reviews; low-confidence strata get more "
            "reviews under error-weighted allocation.</p>"
        )
    return section("review", "Review sample", "".join(parts))
