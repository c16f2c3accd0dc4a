"""Issue #18 "Label Studio round trip works" for multilabel runs: a synthetic committed
multilabel run's sample is drawn (Ray scan), pushed to a real Label Studio server, annotated
with several choices (and none) per task through the official SDK, pulled back by
`evaluate review.reviewed=labelstudio`, estimated, and written as feedback."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lsserver import LabelStudioServer
from PIL import Image

from raylabel.config import load_config
from raylabel.io import layout, storage
from raylabel.io.layout import RunLayout
from raylabel.io.schema import MULTILABEL_SCHEMA
from raylabel.io.storage import StorageOptions
from raylabel.models.card import ModelCard
from raylabel.review import draw_review, evaluate_run, push_review
from raylabel.review.ls_api import LabelStudioClient
from raylabel.stats import multilabel_sampling as mls

pytestmark = pytest.mark.slow
CLASSES = ["cat", "dog", "sky"]
POS, NEG = 0.7, 0.3

#: one annotation per task with every listed choice (an empty list: submitted, no class)
REVIEWER = """
import json, sys
from label_studio_sdk import LabelStudio
url, key, project, run_id, answers_path = sys.argv[1:6]
answers = json.load(open(answers_path))
ls = LabelStudio(base_url=url, api_key=key)
done = 0
for task in ls.tasks.list(project=int(project)):
    data = task.data or {}
    if data.get("run_id") != run_id or data.get("item_id") not in answers:
        continue
    picked = answers[data["item_id"]]
    result = [{"from_name": "label", "to_name": "image", "type": "choices",
               "value": {"choices": picked}}] if picked else []
    ls.annotations.create(id=task.id, result=result)
    done += 1
print(done)
"""


def _committed_run(root: Path, n: int) -> tuple[RunLayout, ModelCard, dict[str, list[str]]]:
    """A multilabel run as the label stage leaves it (labels/, summary.json, the card), and
    the truth a reviewer would give (the decided positives, undecided ones made positive
    when their score is over 0.5, one item's dog flipped)."""
    opts = StorageOptions()
    version = "m-ml-1"
    card = ModelCard(version, "small_cnn", "image", CLASSES, {"image_size": 32}, task="multilabel",
                     thresholds=dict.fromkeys(CLASSES, POS),
                     negative_thresholds=dict.fromkeys(CLASSES, NEG))  # fmt: skip
    storage.write_json(str(root / "models" / version / "model_card.json"), card.to_json(), opts)
    run = RunLayout(str(root), "tags", "r-20260101-000000")
    rng = np.random.default_rng(5)
    images = root / "drop"
    images.mkdir(parents=True)
    rows, truth = [], {}
    for i in range(n):
        s = rng.beta(0.6, 0.6, len(CLASSES)).astype(np.float32)
        uri = str(images / f"it{i:03d}.png")
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(uri)
        pos = [c for c, v in zip(CLASSES, s, strict=True) if v >= POS]
        und = [c for c, v in zip(CLASSES, s, strict=True) if NEG < v < POS]
        margin = float(np.min(np.minimum(np.abs(s - POS), np.abs(s - NEG))))
        truth[f"it{i:03d}"] = sorted(
            {*pos, *(c for c, v in zip(CLASSES, s, strict=True) if c in und and v > 0.5)}
            ^ ({"dog"} if i % 7 == 0 else set())
        )
        rows.append({"item_id": f"it{i:03d}", "uri": uri, "labels": pos, "undecided_labels": und,
                     "scores": s.tolist(), "raw_scores": s.tolist(), "margin": margin,
                     "accepted": not und, "model_version": version, "run_id": run.run_id,
                     "drop": "tags", "labeled_at": datetime(2026, 1, 1, tzinfo=UTC)})  # fmt: skip
    table = pa.Table.from_pylist(rows, schema=MULTILABEL_SCHEMA)
    Path(run.labels_dir).mkdir(parents=True)
    pq.write_table(table.slice(0, n // 2), str(Path(run.labels_dir) / "part-0.parquet"))
    pq.write_table(table.slice(n // 2), str(Path(run.labels_dir) / "part-1.parquet"))
    edges = mls.margin_edges(load_config([], []).review.bin_edges)
    summary = {"run_id": run.run_id, "drop": "tags", "model_version": version, "task":
               "multilabel", "classes": CLASSES, "strata": mls.strata_counts(table, edges),
               "qc": {"target_precision": 0.9}}  # fmt: skip
    storage.write_json(run.path("summary.json"), summary, opts)
    return run, card, truth


def test_multilabel_label_studio_round_trip(label_studio: LabelStudioServer, ray_cluster: None,
                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:  # fmt: skip
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.api_key)
    out = tmp_path / "out"
    run, card, truth = _committed_run(out, 160)
    base = [f"output.root={out}", "drop.name=tags", "task=multilabel", "review.size=24",
            "review.uncertain_size=6", f"review.labelstudio.url={label_studio.url}"]  # fmt: skip
    cfg = load_config([], base)
    summary = storage.read_json(run.path("summary.json"), StorageOptions())
    info = draw_review(cfg, run, card, {"strata": summary["strata"]}, StorageOptions())
    layout.commit_run(run, StorageOptions(), {})
    assert info["size"] == 24 and info["uncertain"] == 6
    sample = pq.read_table(Path(run.review_dir) / "sample.parquet")
    assert sample.group_by("stratum").aggregate([("weight", "sum")]).column(
        "weight_sum").to_pylist() == pytest.approx(
        [summary["strata"][s] for s in sample.group_by("stratum").aggregate(
            [("weight", "sum")]).column("stratum").to_pylist()])  # fmt: skip
    queue_ids = pq.read_table(Path(run.review_dir) / "uncertain.parquet").column("item_id")

    pushed = push_review(load_config([], base))
    assert pushed.sent == {"sample": 24, "uncertain": 6}
    client = LabelStudioClient(label_studio.url, label_studio.api_key)
    project = client.find_project(pushed.title)
    assert project is not None and 'choice="multiple"' in project["label_config"]
    tasks = {t["data"]["item_id"]: t for t in client.export(pushed.project_id)}
    assert all(tasks[i]["predictions"] for i in sample.column("item_id").to_pylist())
    sent = json.loads((Path(run.review_dir) / "labelstudio.json").read_text())
    for task, row in zip(sent, sample.to_pylist(), strict=True):  # every positive class
        got = [c for r in task["predictions"][0]["result"] for c in r["value"]["choices"]]
        assert task["data"]["item_id"] == row["item_id"] and got == row["labels"]

    ids = [*sample.column("item_id").to_pylist(), *queue_ids.to_pylist()]
    answers = {i: truth[i] for i in ids}
    assert any(not v for v in answers.values()) and any(len(v) > 1 for v in answers.values())
    path = tmp_path / "answers.json"
    path.write_text(json.dumps(answers))
    done = subprocess.run(
        [str(label_studio.python), "-c", REVIEWER, label_studio.url, label_studio.api_key,
         str(pushed.project_id), run.run_id, str(path)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == str(len(ids))

    result = evaluate_run(load_config([], [*base, "review.reviewed=labelstudio"]))
    ev = result.evaluation
    assert ev["task"] == "multilabel" and ev["n_reviewed"] == 24
    assert ev["other_reviews"]["uncertain_queue"] == 6
    exact = np.mean([truth[i] == sorted(r) for i, r in zip(sample.column("item_id").to_pylist(),
                     sample.column("labels").to_pylist(), strict=True)])  # fmt: skip
    assert ev["overall"]["lower"] <= ev["overall"]["point"] <= ev["overall"]["upper"]
    assert 0.0 < ev["overall"]["point"] < 1.0 and exact < 1.0
    assert set(ev["multilabel"]["undecided_added"]) == set(CLASSES)
    fb = pq.read_table(result.feedback_uri)
    got = dict(zip(fb.column("item_id").to_pylist(), fb.column("label").to_pylist(), strict=True))
    assert got == {i: "|".join(truth[i]) for i in ids}
