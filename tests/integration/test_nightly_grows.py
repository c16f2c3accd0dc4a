"""Issue #16 "done when", on the loopback S3 server as a new user would: night 1 labels a
drop; 40 files land in it and a second drop appears; night 2 brings both up to date with
reused/inferred counts that add up; night 3 with nothing new writes no run; a drop without
its ready marker waits and is labeled the night it appears. The morning page shows it."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from modelutil import publish_random_model
from s3server import S3Server, make_bucket, upload_tree

from raylabel.config import load_config
from raylabel.demo.images import ImageDemoSpec, write_image_demo
from raylabel.io import layout, listing, storage
from raylabel.nightly import nightly

pytestmark = pytest.mark.slow
CLASSES = ["circle", "square"]
ROOT = "s3://rl-grow/out"


def _ids(uri: str, opts: storage.StorageOptions) -> list[str]:
    fs, path = storage.resolve(uri, opts)
    ids: list[str] = []
    for sub in ("labels", "errors"):
        if storage.exists(storage.join(uri, sub), opts):
            ids += pq.read_table(f"{path}/{sub}", filesystem=fs).column("item_id").to_pylist()
    return ids


def test_three_nights_on_a_growing_bucket(
    ray_cluster: None, s3_server: S3Server, tmp_path: Path
) -> None:
    url = s3_server.endpoint_url
    opts = storage.StorageOptions(endpoint_url=url)
    make_bucket(url, "rl-grow")
    spec = ImageDemoSpec(1, 60, 32, classes=tuple(CLASSES), n_bad_items=1, seed=3)
    first = write_image_demo(tmp_path / "a", spec).drop_dir
    more = write_image_demo(
        tmp_path / "more", ImageDemoSpec(1, 40, 32, classes=tuple(CLASSES), n_bad_items=0, seed=4)
    )
    second = write_image_demo(
        tmp_path / "b", ImageDemoSpec(1, 25, 32, classes=tuple(CLASSES), n_bad_items=0, seed=5)
    )
    upload_tree(first, url, "s3://rl-grow/drops/a")
    (tmp_path / "ready").mkdir()
    (tmp_path / "ready" / "_READY").write_text("")
    upload_tree(tmp_path / "ready", url, "s3://rl-grow/drops/a")
    publish_random_model(tmp_path, CLASSES, out=ROOT, opts=opts)
    cfg = load_config(
        [],
        [
            "drops.root=s3://rl-grow/drops",
            f"output.root={ROOT}",
            f"storage.endpoint_url={url}",
            "drops.ready_marker=_READY",
            "review.size=8",
        ],
    )
    n_a = sum(1 for p in first.rglob("*") if p.is_file())

    night1 = nightly(cfg)
    (a1,) = night1.outcomes
    assert (a1.drop, a1.status) == ("a", "done"), night1.summary_lines()
    assert a1.counts["inferred"] == n_a and a1.counts["reused"] == 0

    upload_tree(more.drop_dir, url, "s3://rl-grow/drops/a/later")  # 40 files land in a
    upload_tree(second.drop_dir, url, "s3://rl-grow/drops/b")  # a new drop, ready
    upload_tree(tmp_path / "ready", url, "s3://rl-grow/drops/b")
    upload_tree(second.drop_dir, url, "s3://rl-grow/drops/c")  # still being written
    night2 = nightly(cfg)
    by = {o.drop: o for o in night2.outcomes}
    assert {d: o.status for d, o in by.items()} == {"a": "done", "b": "done", "c": "waiting"}
    assert "_READY" in by["c"].detail
    assert (by["a"].counts["reused"], by["a"].counts["inferred"]) == (n_a, 40)
    assert by["a"].counts["input"] == n_a + 40 == by["a"].counts["reused"] + 40
    assert by["b"].counts["inferred"] == by["b"].counts["input"] == 25
    ids = _ids(layout.RunLayout(ROOT, "a", by["a"].run_id).run_dir, opts)
    assert len(ids) == len(set(ids)) == n_a + 40  # every current item exactly once
    assert any("waiting" in line and "c" in line for line in night2.summary_lines())

    night3 = nightly(cfg)
    assert {o.drop: o.status for o in night3.outcomes} == {
        "a": "skipped",
        "b": "skipped",
        "c": "waiting",
    }
    assert "1 waiting" in night3.summary_lines()[0]
    runs_a = listing.list_dirs(f"{ROOT}/runs/a", opts)
    assert len([r for r in runs_a if r.startswith("r-")]) == 2  # night 3 wrote no run

    upload_tree(tmp_path / "ready", url, "s3://rl-grow/drops/c")
    night4 = nightly(cfg)
    assert {o.drop: o.status for o in night4.outcomes}["c"] == "done"

    page = storage.read_text(f"{ROOT}/nightly/index.html", opts)
    assert night4.page_uri.endswith("nightly/index.html")
    for text in ("Drops, night by night", night1.night_id, night4.night_id, "reused", "waiting"):
        assert text in page
    assert "data:image/png;base64," in page  # the plots are inline
