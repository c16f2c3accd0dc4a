"""Issue #8 item 1: an inference actor SIGKILLed mid-run; the run completes, ids exactly once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from faults import committed_ids, drop_ids, kill_one_actor, small_blocks
from modelutil import publish_random_model

from raylabel.config import load_config
from raylabel.demo.images import ImageDemoSpec, write_image_demo
from raylabel.io import layout
from raylabel.io.storage import StorageOptions
from raylabel.label import label

pytestmark = pytest.mark.slow
CLASSES = ["circle", "square"]


def _kill_when_actor_serves(runs: Path, killed: dict[str, int]) -> None:
    """Kill the inference actor's process as soon as it is alive, i.e. while the drop's blocks
    are being inferred. (Waiting for the first labels file raced: on a fast machine the one
    actor had inferred the whole small drop before the first write finished.)"""
    killed["pid"] = kill_one_actor("(InferenceActor)")
    killed["files_before"] = _files(runs)


def _files(runs: Path) -> int:
    return len(list(runs.glob("*/labels/*.parquet")))


def test_killed_inference_actor_run_completes_exactly_once(
    ray_cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = ImageDemoSpec(
        n_seed_per_class=1, n_drop=400, image_size=32, classes=tuple(CLASSES), n_bad_items=3
    )
    data = write_image_demo(tmp_path / "data", spec)
    expected = drop_ids(data.drop_dir)
    publish_random_model(tmp_path, CLASSES)
    cfg = load_config(
        [],
        [
            f"drop.path={data.drop_dir}",
            f"output.root={tmp_path / 'out'}",
            "drop.name=killed",
            "model.image_size=32",
            "infer.num_actors=1",
            "infer.batch_size=4",
            "infer.preprocess_batch_size=8",
            "output.rows_per_file=16",
            "review.size=8",
        ],
    )
    runs = tmp_path / "out" / "runs" / "killed"
    killed: dict[str, int] = {}
    killer = threading.Thread(target=_kill_when_actor_serves, args=(runs, killed), daemon=True)
    killer.start()
    from ray.data import DataContext

    ctx = DataContext.get_current()
    monkeypatch.setattr(ctx, "target_max_block_size", ctx.target_max_block_size)  # restored
    small_blocks()
    result = label(cfg)
    killer.join(timeout=5)

    assert killed.get("pid"), "the inference actor was never killed"
    assert _restarts("(InferenceActor)") >= 1, "the killed actor was not restarted"
    written = len(list((runs / result.run_id / "labels").glob("*.parquet")))
    assert killed["files_before"] < written, "the kill came after all output was written"
    assert layout.latest_run(str(tmp_path / "out"), "killed", StorageOptions()) == result.run_id
    ids = committed_ids(runs / result.run_id)
    assert len(ids) == len(set(ids)) == len(expected) == 403  # nothing lost, nothing twice
    assert set(ids) == expected
    assert result.summary["counts"]["errors"] == 3  # the planted bad files, not the kill


def _restarts(class_name: str) -> int:
    """How often Ray restarted the pool's actor: the kill hit a live actor mid-run."""
    import ray

    table = ray._private.state.actors()
    return max(
        int(a.get("NumRestarts") or 0)
        for a in table.values()
        if class_name in str(a.get("ActorClassName"))
    )
