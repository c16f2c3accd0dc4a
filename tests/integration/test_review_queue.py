"""Issue #19 item 2: every review counts. Reviews of the uncertain queue are accepted
beside the sample's (two files, as two Label Studio projects would export), estimates use
the probability sample only and say how many other reviews arrived, all agreed reviews
become feedback, repeats that agree count once and disagreements are reported."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from modelutil import publish_random_model
from packing import pack_folder
from s3server import S3Server, make_bucket, upload_tree

from raylabel.config import load_config
from raylabel.demo.images import ImageDemoSpec, write_image_demo
from raylabel.errors import ReviewError
from raylabel.inputs.sources import feedback_listing
from raylabel.io.storage import StorageOptions
from raylabel.label import label
from raylabel.review import evaluate_run

pytestmark = pytest.mark.slow
CLASSES = ["circle", "square"]


def test_queue_reviews_count_as_feedback_not_as_estimates(
    ray_cluster: None, tmp_path: Path
) -> None:
    data = write_image_demo(
        tmp_path / "data", ImageDemoSpec(1, 60, 32, classes=tuple(CLASSES), n_bad_items=0)
    )
    publish_random_model(tmp_path, CLASSES)
    out = tmp_path / "out"
    base = [f"output.root={out}", "drop.name=d", "review.size=10", "review.uncertain_size=8"]
    run = label(load_config([], [*base, f"drop.path={data.drop_dir}"]))
    review = Path(run.run_uri) / "review"
    sample = pq.read_table(review / "sample.parquet").column("item_id").to_pylist()
    queue = pq.read_table(review / "uncertain.parquet").column("item_id").to_pylist()
    assert queue and not set(queue) & set(sample)  # an item goes to reviewers once

    first = tmp_path / "sample-export.csv"
    first.write_text(
        "item_id,true_label\n"
        + "".join(f"{i},circle\n" for i in sample)
        + f"{sample[0]},circle\n"  # the same verdict twice: counts once
    )
    second = tmp_path / "queue-export.csv"
    second.write_text(
        "item_id,true_label\n"
        + "".join(f"{i},square\n" for i in queue)
        + f"{sample[1]},square\n"  # a second reviewer disagrees on a sample item
    )
    result = evaluate_run(
        load_config([], [*base, f"run.run_id={run.run_id}", f"review.reviewed={first},{second}"])
    )
    ev = json.loads(Path(result.evaluation_uri).read_text())
    assert ev["n_reviewed"] == len(sample) - 1  # the disputed item is not guessed
    assert ev["other_reviews"]["uncertain_queue"] == len(queue)
    assert ev["repeated_reviews"] == {
        "repeats": 1,
        "disagreements": 1,
        "items": {sample[1]: ["circle", "square"]},
    }
    fb = pq.read_table(result.feedback_uri).to_pylist()
    assert len(fb) == len(sample) - 1 + len(queue)
    by_id = {r["item_id"]: r for r in fb}
    assert all(by_id[i]["sampled"] is False and by_id[i]["weight"] is None for i in queue)
    assert all(by_id[i]["sampled"] is True and by_id[i]["weight"] for i in sample[2:])
    assert sample[1] not in by_id
    listed = feedback_listing(str(out), StorageOptions())
    assert listed is not None and listed.num_rows == len(fb)  # the next training sees all

    stray = tmp_path / "stray.csv"
    stray.write_text("item_id,true_label\nnot-sent.png,circle\n")
    with pytest.raises(ReviewError, match="not in the review sample or the uncertain queue"):
        evaluate_run(
            load_config([], [*base, f"run.run_id={run.run_id}", f"review.reviewed={stray}"])
        )


def test_packed_drop_tasks_open_without_the_drop(ray_cluster: None, tmp_path: Path) -> None:
    """Issue #19 item 1: items of a packed Parquet drop are `file#id` uris no browser can
    open; the tasks carry the images themselves."""
    import base64
    import io

    from PIL import Image

    data = write_image_demo(
        tmp_path / "data", ImageDemoSpec(1, 30, 32, classes=tuple(CLASSES), n_bad_items=0)
    )
    packed = pack_folder(data.drop_dir, tmp_path / "packed")
    publish_random_model(tmp_path, CLASSES)
    run = label(
        load_config(
            [],
            [f"output.root={tmp_path / 'out'}", f"drop.path={packed}", "review.size=6",
             "review.uncertain_size=4", "review.media_px=64"],
        )
    )  # fmt: skip
    review = Path(run.run_uri) / "review"
    for name in ("labelstudio.json", "uncertain_labelstudio.json"):
        tasks = json.loads((review / name).read_text())
        assert tasks
        for task in tasks:
            shown = task["data"]["image"]
            assert shown.startswith("data:image/jpeg;base64,"), shown[:80]
            img = Image.open(io.BytesIO(base64.b64decode(shown.split(",", 1)[1])))
            assert max(img.size) <= 64
            assert "#" in task["data"]["uri"]  # the join key is still the item's uri
    sample = pq.read_table(review / "sample.parquet")
    assert "media" not in sample.column_names  # the Parquet/CSV files stay lean


def test_presigned_media_open_s3_items_without_credentials(
    ray_cluster: None, s3_server: S3Server, tmp_path: Path
) -> None:
    """Issue #19 item 1: `review.media=presigned` gives S3 items time-limited links a browser
    opens without credentials; the link serves the object's own bytes."""
    import urllib.request

    data = write_image_demo(
        tmp_path / "data", ImageDemoSpec(1, 12, 32, classes=tuple(CLASSES), n_bad_items=0)
    )
    make_bucket(s3_server.endpoint_url, "presign-drop")
    upload_tree(data.drop_dir, s3_server.endpoint_url, "s3://presign-drop/night-1")
    publish_random_model(tmp_path, CLASSES)
    run = label(
        load_config(
            [],
            [f"output.root={tmp_path / 'out'}", "drop.path=s3://presign-drop/night-1",
             f"storage.endpoint_url={s3_server.endpoint_url}", "review.size=4",
             "review.uncertain_size=2", "review.media=presigned", "review.presign_ttl_s=600"],
        )
    )  # fmt: skip
    tasks = json.loads((Path(run.run_uri) / "review" / "labelstudio.json").read_text())
    assert tasks
    for task in tasks:
        link = task["data"]["image"]
        assert link.startswith(s3_server.endpoint_url) and "X-Amz-Expires=600" in link
        with urllib.request.urlopen(link, timeout=30) as resp:  # no credentials sent
            served = resp.read()
        name = task["data"]["uri"].rsplit("/", 1)[1]
        assert served == (data.drop_dir / name).read_bytes()
