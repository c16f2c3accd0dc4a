"""The public Parquet schemas (DESIGN.md): users' downstream jobs read these columns."""

from __future__ import annotations

import pyarrow as pa

LABEL_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("uri", pa.string()),
        ("label", pa.string()),
        ("label_index", pa.int32()),
        ("confidence", pa.float32()),
        ("raw_confidence", pa.float32()),
        ("margin", pa.float32()),
        ("entropy", pa.float32()),
        ("topk_labels", pa.list_(pa.string())),
        ("topk_scores", pa.list_(pa.float32())),
        ("accepted", pa.bool_()),
        ("threshold", pa.float32()),
        ("model_version", pa.string()),
        ("run_id", pa.string()),
        ("drop", pa.string()),
        ("labeled_at", pa.timestamp("us", tz="UTC")),
    ]
)

ERROR_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("uri", pa.string()),
        ("stage", pa.string()),
        ("error", pa.string()),
    ]
)

# text runs add one column: whether the item was cut to model.max_length tokens
TEXT_LABEL_SCHEMA = LABEL_SCHEMA.append(pa.field("truncated", pa.bool_()))


def label_schema(modality: str) -> pa.Schema:
    """The labels/ schema a modality writes: text adds `truncated`, while image runs keep exactly
    the documented base schema."""
    return TEXT_LABEL_SCHEMA if modality == "text" else LABEL_SCHEMA


# task: multilabel (a set of classes per item): one decision per class, `accepted` when no class
# is undecided; `scores` are the calibrated per-class probabilities in the card's class order
MULTILABEL_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("uri", pa.string()),
        ("labels", pa.list_(pa.string())),
        ("undecided_labels", pa.list_(pa.string())),
        ("scores", pa.list_(pa.float32())),
        ("raw_scores", pa.list_(pa.float32())),
        ("margin", pa.float32()),
        ("accepted", pa.bool_()),
        ("model_version", pa.string()),
        ("run_id", pa.string()),
        ("drop", pa.string()),
        ("labeled_at", pa.timestamp("us", tz="UTC")),
    ]
)
TEXT_MULTILABEL_SCHEMA = MULTILABEL_SCHEMA.append(pa.field("truncated", pa.bool_()))


def labels_schema(modality: str, task: str) -> pa.Schema:
    """The labels/ schema of a run: the task picks the columns, text adds `truncated`."""
    if task == "multilabel":
        return TEXT_MULTILABEL_SCHEMA if modality == "text" else MULTILABEL_SCHEMA
    return label_schema(modality)
