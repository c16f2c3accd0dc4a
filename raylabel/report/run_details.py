"""The run-details section of the run report: provenance, timings and resources, for
whoever reruns or debugs the job."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from raylabel.report.kit import as_dict, as_list, code, fsec, kv, num, section, table


def sec_run(s: Mapping[str, Any]) -> str:
    """Whoever reruns or debugs a job needs its provenance, timings and resources."""
    inp, outp = as_dict(s.get("input")), as_dict(s.get("output"))
    classes = as_list(s.get("classes"))
    parts = [
        kv(
            [
                ("Run id", code(s.get("run_id"))),
                ("Drop", s.get("drop")),
                ("Model version", code(s.get("model_version"))),
                ("Pseudo-labels in training", as_dict(s.get("pseudo_labels")).get("line")),
                ("Architecture", s.get("arch")),
                ("Modality", s.get("modality")),
                ("Classes", f"{len(classes)}: {', '.join(map(str, classes))}" if classes else None),
                ("Input", code(inp.get("uri"))),
                ("Input kind", inp.get("kind")),
                ("Input fingerprint", code(s.get("input_fingerprint"))),
                ("Output run directory", code(outp.get("run_dir"))),
                ("Created at", s.get("created_at")),
                ("raylabel version", s.get("raylabel_version")),
            ]
        )
    ]
    dur = as_dict(s.get("durations_s"))
    tput = num(s.get("throughput_items_per_s"))
    if dur or tput is not None:
        parts.append("<h3>Timings</h3>")
        rows = [(k, fsec(v)) for k, v in dur.items()]
        if tput is not None:
            rows.append(("throughput (pipeline)", f"{tput:,.1f} items/s"))
        parts.append(table(["phase", "time"], rows, num={1}))
    pool = as_dict(s.get("pool"))
    if pool:
        parts.append("<h3>Inference pool</h3>")
        parts.append(kv([(str(k).replace("_", " "), v) for k, v in pool.items()]))
    return section("run", "Run details", "".join(parts))
