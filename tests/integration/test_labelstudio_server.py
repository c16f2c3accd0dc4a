"""Issue #19 item 4: the review loop against a real Label Studio server on loopback.

`raylabel review push` creates the drop's project from the exported labeling config and
imports a run's tasks through the REST API; reviewers annotate through the official SDK;
`evaluate review.reviewed=labelstudio` pulls the annotations straight from the project; the
reviews become feedback the next `train` uses. Folder, packed-Parquet and JSONL text drops.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from lsserver import LabelStudioServer, annotate
from modelutil import publish_random_model
from packing import pack_folder

from raylabel.cli import main
from raylabel.config import load_config
from raylabel.demo.images import ImageDemoSpec, write_image_demo
from raylabel.demo.texts import TextDemoSpec, write_text_demo
from raylabel.errors import ReviewError
from raylabel.io.storage import StorageOptions
from raylabel.label import label
from raylabel.models.card import read_card_uri
from raylabel.review import evaluate_run, push_review
from raylabel.review.ls_api import LabelStudioClient
from raylabel.train import train

pytestmark = pytest.mark.slow
CLASSES = ["circle", "square"]


@pytest.fixture
def ls_env(label_studio: LabelStudioServer, monkeypatch: pytest.MonkeyPatch) -> LabelStudioServer:
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.api_key)
    return label_studio


def _truth(path: Path) -> dict[str, str]:
    with path.open() as f:
        return {r["item_id"]: r["label"] for r in csv.DictReader(f)}


def _review_ids(run_uri: str) -> tuple[list[str], list[str]]:
    review = Path(run_uri) / "review"
    return (
        pq.read_table(review / "sample.parquet").column("item_id").to_pylist(),
        pq.read_table(review / "uncertain.parquet").column("item_id").to_pylist(),
    )


def test_folder_drop_round_trip_then_retrain(ls_env: LabelStudioServer, ray_cluster: None,
                                             tmp_path: Path) -> None:  # fmt: skip
    data = write_image_demo(
        tmp_path / "data", ImageDemoSpec(6, 60, 32, classes=tuple(CLASSES), n_bad_items=0)
    )
    truth = _truth(data.truth_path)
    publish_random_model(tmp_path, CLASSES)
    out = tmp_path / "out"
    base = [f"output.root={out}", "drop.name=shapes", "review.size=10",
            "review.uncertain_size=6", f"review.labelstudio.url={ls_env.url}"]  # fmt: skip
    run = label(load_config([], [*base, f"drop.path={data.drop_dir}"]))
    sample, queue = _review_ids(run.run_uri)

    # the CLI face: exit 0 and a summary naming the project
    assert main(["review", "push", *base]) == 0
    pushed = push_review(load_config([], base))  # again: nothing twice
    assert sum(pushed.sent.values()) == 0 and pushed.already == len(sample) + len(queue)
    client = LabelStudioClient(ls_env.url, ls_env.api_key)
    tasks = client.export(pushed.project_id)
    assert sorted(t["data"]["item_id"] for t in tasks) == sorted(sample + queue)
    kinds = {t["data"]["item_id"]: t["data"]["review"] for t in tasks}
    assert {kinds[i] for i in sample} == {"sample"} and {kinds[i] for i in queue} == {"uncertain"}
    assert all(t["data"]["image"].startswith("data:image/jpeg;base64,") for t in tasks)
    by_id = {t["data"]["item_id"]: t for t in tasks}
    assert all(by_id[i]["predictions"] for i in sample)  # pre-annotated with the model's label
    assert not any(by_id[i]["predictions"] for i in queue)  # the queue is not anchored

    answers = {i: [truth[i]] for i in sample + queue}
    other = next(c for c in CLASSES if c != truth[sample[0]])
    answers[sample[0]] = [truth[sample[0]], other]  # two reviewers disagree
    answers[sample[1]] = [truth[sample[1]]] * 2  # two agree: counts once
    assert (
        annotate(ls_env, pushed.project_id, run.run_id, answers, tmp_path)
        == len(sample) + len(queue) + 2
    )

    result = evaluate_run(load_config([], [*base, "review.reviewed=labelstudio"]))
    ev = json.loads(Path(result.evaluation_uri).read_text())
    assert ev["n_reviewed"] == len(sample) - 1
    assert ev["other_reviews"]["uncertain_queue"] == len(queue)
    assert ev["repeated_reviews"]["repeats"] == 1
    assert ev["repeated_reviews"]["disagreements"] == 1
    assert ev["reviewed_file"].startswith(f"{ls_env.url}/projects/{pushed.project_id}")
    fb = pq.read_table(result.feedback_uri)
    assert fb.num_rows == len(sample) - 1 + len(queue)

    trained = train(
        load_config(
            [],
            [*base, f"seed.path={data.seed_dir}", "model.image_size=32", "train.epochs=1",
             "train.num_workers=1", "train.batch_size=16", "train.min_steps=2",
             "train.calibration=holdout", "qc.min_support=2", "train.gate_share=0"],
        )
    )  # fmt: skip
    card = read_card_uri(trained.model_uri, StorageOptions())
    assert card.training["n_feedback"] == fb.num_rows  # every agreed review trained


def test_packed_and_text_drops_round_trip(ls_env: LabelStudioServer, ray_cluster: None,
                                          tmp_path: Path) -> None:  # fmt: skip
    """Packed images (ids no browser opens) and JSONL text: the tasks carry the content, the
    annotations come back joined to the right items."""
    data = write_image_demo(
        tmp_path / "img", ImageDemoSpec(1, 24, 32, classes=tuple(CLASSES), n_bad_items=0)
    )
    packed = pack_folder(data.drop_dir, tmp_path / "packed")
    publish_random_model(tmp_path, CLASSES)
    out = tmp_path / "out"
    img = [f"output.root={out}", "drop.name=packed", "review.size=6", "review.uncertain_size=4",
           f"review.labelstudio.url={ls_env.url}"]  # fmt: skip
    run = label(load_config([], [*img, f"drop.path={packed}"]))
    pushed = push_review(load_config([], img))
    tasks = LabelStudioClient(ls_env.url, ls_env.api_key).export(pushed.project_id)
    assert tasks and all(t["data"]["image"].startswith("data:image/") for t in tasks)
    assert all("#" in t["data"]["uri"] for t in tasks)
    sample, queue = _review_ids(run.run_uri)
    annotate(ls_env, pushed.project_id, run.run_id, {i: ["square"] for i in sample + queue},
             tmp_path)  # fmt: skip
    ev = evaluate_run(load_config([], [*img, "review.reviewed=labelstudio"])).evaluation
    assert ev["n_reviewed"] == len(sample)

    spec = TextDemoSpec(n_seed_per_class=8, n_drop=30, n_bad_items=0, long_fraction=0.0)
    text = write_text_demo(tmp_path / "txt", spec)
    topics = sorted({json.loads(line)["label"] for line in text.seed_path.read_text().splitlines()})
    txt = [f"output.root={tmp_path / 'tout'}", "modality=text", "model.arch=rnn",
           "drop.name=tickets", "review.size=6", "review.uncertain_size=4",
           f"review.labelstudio.url={ls_env.url}"]  # fmt: skip
    train(load_config([], [*txt, f"seed.path={text.seed_path}", "train.epochs=1",
                           "train.num_workers=1", "train.min_steps=2", "qc.min_support=2",
                           "train.calibration=holdout"]))  # fmt: skip
    run = label(load_config([], [*txt, f"drop.path={text.drop_manifest}"]))
    pushed = push_review(load_config([], txt))
    assert pushed.title == "raylabel tickets"
    tasks = LabelStudioClient(ls_env.url, ls_env.api_key).export(pushed.project_id)
    manifest = {
        (row := json.loads(line))["item_id"]: row["text"]
        for line in text.drop_manifest.read_text().splitlines()
    }
    for t in tasks:  # the reviewer reads the text itself, not a uri
        assert t["data"]["text"] in manifest.values()
    sample, queue = _review_ids(run.run_uri)
    annotate(ls_env, pushed.project_id, run.run_id, {i: [topics[0]] for i in sample}, tmp_path)
    ev = evaluate_run(load_config([], [*txt, "review.reviewed=labelstudio"])).evaluation
    assert ev["n_reviewed"] == len(sample) and ev["other_reviews"]["uncertain_queue"] == 0


def test_server_errors_are_one_line(ls_env: LabelStudioServer, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    client = LabelStudioClient(ls_env.url, "not-a-valid-token")
    with pytest.raises(ReviewError, match=r"HTTP 401 \(check LABEL_STUDIO_API_KEY\)"):
        client.find_project("anything")
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    cfg = load_config([], [f"output.root={tmp_path}", "drop.name=x",
                           f"review.labelstudio.url={ls_env.url}"])  # fmt: skip
    with pytest.raises(ReviewError, match="LABEL_STUDIO_API_KEY is not set"):
        push_review(cfg)


def test_nightly_publishes_review_tasks(ls_env: LabelStudioServer, ray_cluster: None,
                                        tmp_path: Path) -> None:  # fmt: skip
    """A nightly run with review.labelstudio.url pushes each labeled drop's tasks; the next
    night (the drop up to date) pushes nothing twice."""
    from raylabel.nightly import nightly

    (tmp_path / "drops").mkdir()
    spec = ImageDemoSpec(1, 16, 32, classes=tuple(CLASSES), n_bad_items=0)
    write_image_demo(tmp_path / "night-a", spec).drop_dir.rename(tmp_path / "drops" / "night-a")
    publish_random_model(tmp_path, CLASSES)
    cfg = load_config([], [f"drops.root={tmp_path / 'drops'}", f"output.root={tmp_path / 'out'}",
                           "model.image_size=32", "review.size=4", "review.uncertain_size=2",
                           f"review.labelstudio.url={ls_env.url}"])  # fmt: skip
    first = nightly(cfg)
    assert [o.status for o in first.outcomes] == ["done"]
    for o in first.outcomes:
        assert o.review is not None and o.review.startswith("pushed 6 to Label Studio"), o.review
    second = nightly(cfg)
    assert [o.status for o in second.outcomes] == ["skipped"]
    assert all("pushed 0" in (o.review or "") and "6 already there" in (o.review or "")
               for o in second.outcomes)  # fmt: skip
    night = json.loads(Path(second.summary_uri).read_text())
    assert all("already there" in d["review"] for d in night["drops"])
