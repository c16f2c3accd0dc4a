"""The label_issues.parquet schemas, one per task, in one place: the audit stage writes them,
the multilabel ranking fills its own, and tools that read an audit check against them
(docs/seed-audit.md)."""

from __future__ import annotations

import pyarrow as pa

UNREADABLE = "not decodable: left out of the audit (training skips it too)"

ISSUES_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("uri", pa.string()),
        ("given_label", pa.string()),
        ("suggested_label", pa.string()),
        ("label_quality", pa.float32()),
        ("given_prob", pa.float32()),
        ("suggested_prob", pa.float32()),
        ("is_label_issue", pa.bool_()),
        ("rank", pa.int32()),
        ("fold", pa.int32()),
        ("error", pa.string()),
    ]
)

#: task=multilabel: label sets instead of labels (docs/seed-audit.md)
MULTILABEL_ISSUES_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("uri", pa.string()),
        ("given_labels", pa.list_(pa.string())),
        ("suggested_labels", pa.list_(pa.string())),
        ("added", pa.list_(pa.string())),
        ("removed", pa.list_(pa.string())),
        ("label_quality", pa.float32()),
        ("is_label_issue", pa.bool_()),
        ("rank", pa.int32()),
        ("fold", pa.int32()),
        ("error", pa.string()),
    ]
)
