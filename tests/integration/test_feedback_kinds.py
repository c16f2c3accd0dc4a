"""Issue #19 item 3: self-contained feedback. The reviewed items' bytes are kept when their
review files are drawn and copied next to the feedback at `evaluate`, so the next training
uses every review whatever the seed and drop kinds are (packed Parquet images, inline JSONL
text), even after the drop is deleted; the card counts them by drop."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from modelutil import publish_random_model
from packing import pack_folder
from s3server import S3Server, make_bucket, upload_tree

from raylabel.config import Config, load_config
from raylabel.demo.images import ImageDemoSpec, write_image_demo
from raylabel.demo.texts import TextDemoSpec, write_text_demo
from raylabel.io.storage import StorageOptions
from raylabel.label import label
from raylabel.models.card import read_card_uri
from raylabel.review import evaluate_run
from raylabel.train import train

pytestmark = pytest.mark.slow
FAST = ["train.epochs=1", "train.num_workers=1", "train.min_steps=2", "train.batch_size=16",
        "train.calibration=holdout", "qc.min_support=2", "train.gate_share=0"]  # fmt: skip


def _truth_csv(truth_path: Path, run_uri: str, out: Path) -> Path:
    """A reviewer who answers every sample and queue item with the truth."""
    with truth_path.open() as f:
        truth = {r["item_id"]: r["label"] for r in csv.DictReader(f)}
    review = Path(run_uri) / "review"
    ids = [
        *pq.read_table(review / "sample.parquet").column("item_id").to_pylist(),
        *pq.read_table(review / "uncertain.parquet").column("item_id").to_pylist(),
    ]
    out.write_text("item_id,true_label\n" + "".join(f"{i},{truth[i]}\n" for i in ids))
    return out


def _decoded_feedback(cfg: Config) -> int:
    """How many feedback rows the training data pipeline decodes without an error."""
    from raylabel.fit.data import preprocessor, seed_rows_dataset
    from raylabel.inputs import sources
    from raylabel.train.stage import add_feedback

    opts = sources.storage_options(cfg)
    plan = sources.plan_seed(cfg)
    assert add_feedback(cfg, plan, opts) is not None and plan.listing is not None
    index = {c: i for i, c in enumerate(plan.classes())}
    rows = np.arange(plan.listing.num_rows)
    decode = preprocessor(cfg, opts, "")
    ds = seed_rows_dataset(cfg, plan, opts, rows, index, decode, None, np.random.default_rng(0))
    t = ds.select_columns(["item_id", "error"]).to_arrow_refs()
    import ray

    tables = [ray.get(r) for r in t]
    ok = [
        i
        for tab in tables
        for i, e in zip(
            tab.column("item_id").to_pylist(), tab.column("error").to_pylist(), strict=True
        )
        if e is None and i.startswith("feedback/")
    ]
    return len(ok)


def test_packed_seed_and_drop_reviews_train_after_the_drop_is_gone(
    ray_cluster: None, tmp_path: Path
) -> None:
    data = write_image_demo(tmp_path / "data", ImageDemoSpec(6, 40, 32, n_bad_items=0))
    seed_labels = {p.name: p.parent.name for p in data.seed_dir.rglob("*") if p.is_file()}
    seed = pack_folder(data.seed_dir, tmp_path / "seed", seed_labels)
    drop = pack_folder(data.drop_dir, tmp_path / "drop")
    base = [f"output.root={tmp_path / 'out'}", "model.image_size=32", "drop.name=packed",
            "review.size=8", "review.uncertain_size=4"]  # fmt: skip
    publish_random_model(tmp_path, sorted(set(seed_labels.values())))  # labels tonight's drop
    run = label(load_config([], [*base, f"drop.path={drop}"]))
    kept = pq.read_table(Path(run.run_uri) / "review" / "payloads.parquet")
    reviews = _truth_csv(data.truth_path, run.run_uri, tmp_path / "reviews.csv")
    n_reviews = len(reviews.read_text().splitlines()) - 1
    assert kept.num_rows == n_reviews  # every reviewed item's bytes were kept at labeling
    result = evaluate_run(load_config([], [*base, f"review.reviewed={reviews}"]))
    fb = pq.read_table(result.feedback_uri)
    assert fb.column("payload_uri").null_count == 0
    assert all("#" in u for u in fb.column("uri").to_pylist())  # the drop's own ids: unfetchable

    shutil.rmtree(drop)  # the drop is gone; its reviews still train
    cfg = load_config([], [*base, f"seed.path={seed}", *FAST])
    assert _decoded_feedback(cfg) == n_reviews  # read from the kept copies, none unreadable
    retrained = train(cfg)
    card = read_card_uri(retrained.model_uri, StorageOptions())
    assert card.training["n_feedback"] == n_reviews
    assert card.training["feedback_by_drop"] == {"packed": n_reviews}


def test_inline_text_seed_and_jsonl_drop_reviews_train(ray_cluster: None, tmp_path: Path) -> None:
    spec = TextDemoSpec(n_seed_per_class=8, n_drop=30, n_bad_items=0, long_fraction=0.0)
    text = write_text_demo(tmp_path / "txt", spec)
    base = [f"output.root={tmp_path / 'out'}", "modality=text", "model.arch=rnn",
            "drop.name=tickets", "review.size=6", "review.uncertain_size=4"]  # fmt: skip
    train(load_config([], [*base, f"seed.path={text.seed_path}", *FAST]))
    run = label(load_config([], [*base, f"drop.path={text.drop_manifest}"]))
    reviews = _truth_csv(text.truth_path, run.run_uri, tmp_path / "reviews.csv")
    n_reviews = len(reviews.read_text().splitlines()) - 1
    result = evaluate_run(load_config([], [*base, f"review.reviewed={reviews}"]))
    fb = pq.read_table(result.feedback_uri).to_pylist()
    manifest = {
        (row := json.loads(line))["item_id"]: row["text"]
        for line in text.drop_manifest.read_text().splitlines()
    }
    for row in fb:  # the kept copy is the item's text itself
        assert Path(row["payload_uri"]).read_text() == manifest[row["item_id"]]

    text.drop_manifest.unlink()
    retrained = train(load_config([], [*base, f"seed.path={text.seed_path}", *FAST]))
    card = read_card_uri(retrained.model_uri, StorageOptions())
    assert card.training["n_feedback"] == n_reviews
    assert card.training["feedback_by_drop"] == {"tickets": n_reviews}


def test_s3_seed_drop_and_output_reviews_train_after_the_drop_is_deleted(
    ray_cluster: None, s3_server: S3Server, tmp_path: Path
) -> None:
    """Everything in object storage: a folder seed and a folder drop on S3, output.root on S3.
    The kept copies live under s3://.../feedback/<drop>/media/ and train after the drop's
    objects are deleted."""
    url = s3_server.endpoint_url
    make_bucket(url, "fb-kinds")
    data = write_image_demo(tmp_path / "data", ImageDemoSpec(6, 30, 32, n_bad_items=0))
    upload_tree(data.seed_dir, url, "s3://fb-kinds/seed")
    upload_tree(data.drop_dir, url, "s3://fb-kinds/drops/night-1")
    base = ["output.root=s3://fb-kinds/out", f"storage.endpoint_url={url}", "model.image_size=32",
            "drop.name=night-1", "review.size=8", "review.uncertain_size=4"]  # fmt: skip
    seed = ["seed.path=s3://fb-kinds/seed", *FAST]
    classes = sorted(p.name for p in data.seed_dir.iterdir() if p.is_dir())
    opts = StorageOptions(endpoint_url=url)
    publish_random_model(tmp_path, classes, out="s3://fb-kinds/out", opts=opts)
    run = label(load_config([], [*base, "drop.path=s3://fb-kinds/drops/night-1"]))
    local_run = tmp_path / "run"
    from raylabel.io import storage

    storage.download_dir(storage.join(run.run_uri, "review"), local_run / "review", opts)
    reviews = _truth_csv(data.truth_path, str(local_run), tmp_path / "reviews.csv")
    n_reviews = len(reviews.read_text().splitlines()) - 1
    result = evaluate_run(load_config([], [*base, f"review.reviewed={reviews}"]))
    fb = pq.read_table(io.BytesIO(storage.read_bytes(result.feedback_uri, opts)))
    kept = fb.column("payload_uri").to_pylist()
    assert all(u.startswith("s3://fb-kinds/out/feedback/night-1/media/") for u in kept)

    storage.delete_tree("s3://fb-kinds/drops/night-1", opts)
    assert not storage.exists("s3://fb-kinds/drops/night-1", opts)
    cfg = load_config([], [*base, *seed])
    assert _decoded_feedback(cfg) == n_reviews
    card = read_card_uri(train(cfg).model_uri, opts)
    assert card.training["feedback_by_drop"] == {"night-1": n_reviews}
