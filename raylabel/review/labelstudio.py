"""Label Studio round trip for the review sample: tasks out, reviewed labels back (no Ray).

Tasks use Label Studio's basic JSON import format with pre-annotations: each task has a
``data`` object and a ``predictions`` list whose entries carry ``model_version``, ``score``
and a ``choices`` result addressed by ``from_name``/``to_name`` of the labeling config.
Reviews come back either as that project's JSON export (``annotations[*].result``) or as a
plain CSV with ``item_id,true_label``.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import pyarrow as pa

_OBJECT_TAGS = {"image": ("Image", "image"), "text": ("Text", "text")}


def tasks_from_sample(
    sample: pa.Table,
    model_version: str,
    classes: Sequence[str],
    with_predictions: bool = True,
    from_name: str = "label",
    to_name: str = "image",
    data_key: str = "image",
    payload_col: str | None = None,
    id_col: str = "item_id",
    uri_col: str = "uri",
    label_col: str = "label",
    conf_col: str = "confidence",
    labels_col: str | None = None,
    scores_col: str = "scores",
) -> list[dict]:
    """Label Studio tasks for the review sample, optionally pre-annotated with the model's label.

    ``data[data_key]`` is the item's ``uri`` or, when ``payload_col`` is given (e.g. inline
    text), that column's value; ``data`` also carries ``item_id`` and ``uri`` so reviews can
    be joined back. A predicted label not in ``classes`` raises (Label Studio would show an
    empty choice). ``labels_col`` (multilabel): the prediction picks every class of that
    list (none: an empty result) and its score is `multilabel_score` of ``scores_col``.
    """
    known = set(classes)
    predicted = [labels_col, scores_col] if labels_col else [label_col, conf_col]
    cols = [id_col, uri_col] + (predicted if with_predictions else [])
    if payload_col is not None:
        cols.append(payload_col)
    missing = [c for c in cols if c not in sample.column_names]
    if missing:
        raise ValueError(f"sample table has no column {missing[0]!r}")
    tasks: list[dict] = []
    for i, row in enumerate(sample.select(list(dict.fromkeys(cols))).to_pylist()):
        value = row[payload_col] if payload_col is not None else row[uri_col]
        task: dict[str, Any] = {
            "data": {data_key: value, "item_id": str(row[id_col]), "uri": row[uri_col]}
        }
        if with_predictions:
            chosen = list(row[labels_col] or []) if labels_col else [row[label_col]]
            for label in chosen:
                if label not in known:
                    raise ValueError(
                        f"sample row {i} (item_id {row[id_col]!r}): unknown label {label!r}"
                    )
            score = (
                multilabel_score(row[scores_col], chosen, classes)
                if labels_col
                else float(row[conf_col])
            )
            result = {"from_name": from_name, "to_name": to_name, "type": "choices",
                      "value": {"choices": chosen}}  # fmt: skip
            results = [result] if chosen else []
            task["predictions"] = [
                {"model_version": model_version, "score": score, "result": results}
            ]
        tasks.append(task)
    return tasks


def multilabel_score(scores: Sequence[float] | None, positives: Sequence[str],
                     classes: Sequence[str]) -> float:  # fmt: skip
    """A multilabel prediction's score for Label Studio: the confidence of its weakest class
    decision (s for a positive class, 1 - s for the others)."""
    if not scores:
        return 0.0
    pos = set(positives)
    return float(min(s if c in pos else 1.0 - s for c, s in zip(classes, scores, strict=False)))


def labeling_config_xml(
    classes: Sequence[str],
    modality: str = "image",
    from_name: str = "label",
    to_name: str | None = None,
    data_key: str | None = None,
    multiple: bool = False,
) -> str:
    """Labeling config for single-choice classification matching :func:`tasks_from_sample`;
    ``multiple`` (multilabel) lets a reviewer pick any set of the classes, none included.

    ``to_name``/``data_key`` default to ``image`` (``<Image>``) or ``text`` (``<Text>``).
    """
    if modality not in _OBJECT_TAGS:
        raise ValueError(f"modality must be 'image' or 'text', got {modality!r}")
    tag, default = _OBJECT_TAGS[modality]
    name = to_name or default
    key = data_key or default
    choices = "\n".join(f"    <Choice value={quoteattr(str(c))}/>" for c in classes)
    return (
        "<View>\n"
        f"  <{tag} name={quoteattr(name)} value={quoteattr('$' + key)}/>\n"
        f"  <Choices name={quoteattr(from_name)} toName={quoteattr(name)} "
        f'choice="{"multiple" if multiple else "single"}" showInLine="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>\n"
    )


def load_review_file(source: str | os.PathLike | bytes, name: str | None) -> tuple[str, str, str]:
    """(text, display name, format) of a review file; format from extension or first char."""
    if isinstance(source, bytes | bytearray):
        raw, label = bytes(source), name or "<bytes>"
        ext = ""
    else:
        path = Path(source)
        label = name or str(path)
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise ValueError(f"{label}: cannot read reviews ({e.strerror or e})") from e
        ext = path.suffix.lower()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{label}: not UTF-8 text (byte {e.start})") from e
    if ext == ".json":
        fmt = "json"
    elif ext == ".csv":
        fmt = "csv"
    else:
        fmt = "json" if text.lstrip()[:1] in ("[", "{") else "csv"
    return text, label, fmt


def _parse_csv(text: str, label: str, id_col: str, truth_col: str) -> list[tuple[str, str]]:
    """(item_id, true_label) pairs; rows with an empty true label count as not reviewed."""
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    for col in (id_col, truth_col):
        if col not in header:
            raise ValueError(f"{label}: CSV header lacks column {col!r} (found {header})")
    out = []
    for row in reader:
        line = reader.line_num
        if None in row:
            raise ValueError(f"{label}: row at line {line} has more fields than the header")
        item_id = (row.get(id_col) or "").strip()
        truth = (row.get(truth_col) or "").strip()
        if not item_id:
            if not truth and not any((v or "").strip() for v in row.values()):
                continue  # blank line
            raise ValueError(f"{label}: row at line {line} has no {id_col}")
        if truth:
            out.append((item_id, truth))
    return out


def _parse_ls_json(text: str, label: str) -> list[tuple[str, str]]:
    """(item_id, choice) from a Label Studio export: one review per annotator of a task (their
    last non-cancelled annotation); several annotators give several reviews, which
    `merge_reviews` merges when they agree and reports when they do not."""
    out = []
    for item_id, annotation, where in annotations_by_annotator(text, label):
        choice = _choice(annotation, where)
        if choice is not None:
            out.append((item_id, choice))
    return out


def annotations_by_annotator(text: str, label: str) -> Iterator[tuple[str, dict, str]]:
    """(item_id, annotation, where) of a Label Studio export: each annotator's last
    non-cancelled annotation of each task; a malformed export stops with one line naming
    the task."""
    try:
        tasks = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{label}: invalid JSON at line {e.lineno} column {e.colno}") from e
    if not isinstance(tasks, list):
        raise ValueError(f"{label}: expected a JSON list of Label Studio tasks")
    for i, task in enumerate(tasks):
        where = f"{label}: task {i}" + (
            f" (id {task['id']})" if isinstance(task, dict) and "id" in task else ""
        )
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise ValueError(f"{where}: not a task object with a 'data' object")
        item_id = task["data"].get("item_id")
        if item_id is None or str(item_id).strip() == "":
            raise ValueError(f"{where}: data has no item_id")
        annotations = task.get("annotations") or []
        if not isinstance(annotations, list):
            raise ValueError(f"{where}: 'annotations' is not a list")
        by_annotator: dict[str, dict] = {}
        for a in annotations:  # in order: an annotator's later annotation replaces theirs
            if isinstance(a, dict) and not a.get("was_cancelled"):
                by_annotator[annotator(a.get("completed_by"))] = a
        for annotation in by_annotator.values():
            yield str(item_id), annotation, where


def annotator(completed_by: object) -> str:
    """Who made an annotation: exports give an id or a user object; none = one reviewer."""
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("id", completed_by.get("email"))
    return str(completed_by)


def _choice(annotation: dict, where: str) -> str | None:
    """The class an annotation picked (None: submitted without picking one)."""
    result = annotation.get("result") or []
    if not isinstance(result, list):
        raise ValueError(f"{where}: annotation 'result' is not a list")
    for r in result:
        value = r.get("value") if isinstance(r, dict) else None
        if isinstance(value, dict) and "choices" in value:
            choices = value["choices"]
            if not (isinstance(choices, list) and choices and isinstance(choices[0], str)):
                raise ValueError(f"{where}: 'choices' is not a non-empty list of strings")
            return choices[0]
    return None


def parse_reviews(
    source: str | os.PathLike | bytes,
    name: str | None = None,
    id_col: str = "item_id",
    truth_col: str = "true_label",
) -> pa.Table:
    """Reviewed labels as a table (``item_id``, ``true_label``: strings, one row per item).

    ``source`` is a path or the file's bytes (``name`` then labels messages). Accepts a CSV
    with ``item_id,true_label`` (rows with an empty true label are not-yet-reviewed and are
    skipped) or a Label Studio JSON export (tasks with ``data.item_id``; each annotator's last
    non-cancelled annotation is one review, its first ``choices`` result the verdict; tasks
    without one are skipped).
    Malformed input raises ValueError naming the file and row/task. An item reviewed more
    than once keeps every review here (`merge_reviews` reconciles them).
    """
    text, label, fmt = load_review_file(source, name)
    pairs = (
        _parse_ls_json(text, label) if fmt == "json" else _parse_csv(text, label, id_col, truth_col)
    )
    return pa.table(
        {
            "item_id": pa.array([p[0] for p in pairs], pa.string()),
            "true_label": pa.array([p[1] for p in pairs], pa.string()),
        }
    )


@dataclass
class MergedReviews:
    """Reviews of one evaluation, one verdict per item: repeats that agree count once; items
    whose reviewers disagree are kept aside and reported, never guessed."""

    table: pa.Table  # item_id, true_label: one row per item with an agreed verdict
    repeats: int = 0  # agreeing repeated reviews merged
    disagreements: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The evaluation's account of repeats and disagreements (first 20 items named)."""
        first = dict(list(sorted(self.disagreements.items()))[:20])
        return {"repeats": self.repeats, "disagreements": len(self.disagreements), "items": first}


def merge_reviews(tables: Sequence[pa.Table]) -> MergedReviews:
    """Several review files (the sample's export, the queue's) as one verdict per item."""
    labels: dict[str, list[str]] = {}
    for t in tables:
        for item_id, truth in zip(
            t.column("item_id").to_pylist(), t.column("true_label").to_pylist(), strict=True
        ):
            labels.setdefault(item_id, []).append(truth)
    agreed = {i: ls[0] for i, ls in labels.items() if len(set(ls)) == 1}
    return MergedReviews(
        pa.table(
            {
                "item_id": pa.array(list(agreed), pa.string()),
                "true_label": pa.array(list(agreed.values()), pa.string()),
            }
        ),
        repeats=sum(len(ls) - 1 for i, ls in labels.items() if i in agreed),
        disagreements={i: sorted(set(ls)) for i, ls in labels.items() if i not in agreed},
    )


def refuse_unknown_ids(reviews: pa.Table, sample_ids: set[str]) -> list[str]:
    """The reviewed item ids; ValueError when one was sent to no reviewer (neither the sample
    nor the uncertain queue)."""
    ids = reviews.column("item_id").to_pylist()
    unknown_ids = [i for i in ids if i not in sample_ids]
    if unknown_ids:
        raise ValueError(
            f"{len(unknown_ids)} reviewed item_id(s) are not in the review sample or the "
            f"uncertain queue, first: {unknown_ids[0]!r}"
        )
    return ids


def validate_reviews(reviews: pa.Table, sample_ids: set[str], classes: Sequence[str]) -> None:
    """Refuse reviews of items sent to no reviewer (neither the sample nor the uncertain
    queue) or that use a class the model lacks."""
    ids = refuse_unknown_ids(reviews, sample_ids)
    known = set(classes)
    labels = reviews.column("true_label").to_pylist()
    bad = [(i, t) for i, t in zip(ids, labels, strict=True) if t not in known]
    if bad:
        raise ValueError(
            f"{len(bad)} review(s) use a class not in the model's classes, "
            f"first: {bad[0][1]!r} (item_id {bad[0][0]!r})"
        )
