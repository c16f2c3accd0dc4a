"""Issue #8 item 2: a worker node removed and re-added during labeling.

Outcome: the committed run holds every id exactly once. Ray Data 2.60 aborts a pipeline
whose inference actor was lost with its node, so the label stage relabels the drop into a
fresh run id (`infer.pipeline_attempts`); the lost attempt is marked `_FAILED` and never
commits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from faults import committed_ids, drop_ids
from modelutil import publish_random_model

from raylabel.demo.images import ImageDemoSpec, write_image_demo
from raylabel.io import layout
from raylabel.io.storage import StorageOptions

pytestmark = pytest.mark.slow
CLASSES = ["circle", "square"]


def test_node_removed_and_readded_during_labeling(tmp_path: Path) -> None:
    spec = ImageDemoSpec(
        n_seed_per_class=1, n_drop=300, image_size=32, classes=tuple(CLASSES), n_bad_items=2
    )
    data = write_image_demo(tmp_path / "data", spec)
    expected = drop_ids(data.drop_dir)
    publish_random_model(tmp_path, CLASSES)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    outcome_file = tmp_path / "outcome.json"
    script = Path(__file__).resolve().parents[1] / "support" / "node_churn.py"
    proc = subprocess.run(
        [sys.executable, str(script), str(data.drop_dir), str(tmp_path / "out"), str(outcome_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
    )
    outcome = json.loads(outcome_file.read_text()) if outcome_file.exists() else {}
    assert proc.returncode == 0, f"{outcome.get('error')}\n{proc.stderr[-4000:]}"
    assert outcome.get("removed_at") and outcome.get("readded_at"), "the node was never removed"
    runs = tmp_path / "out" / "runs" / "churn"
    run_id = layout.latest_run(str(tmp_path / "out"), "churn", StorageOptions())
    assert run_id == outcome["run_id"] == outcome["committed"]
    lost = [a["run_id"] for a in outcome["lost_attempts"]]
    if lost:  # the usual outcome: the first attempt died with the node, a fresh one committed
        for attempt in lost:
            assert (runs / attempt / "_FAILED").exists()
            assert not (runs / attempt / "_SUCCESS").exists()
        summary = json.loads((runs / run_id / "summary.json").read_text())
        assert [a["run_id"] for a in summary["lost_attempts"]] == lost
    else:  # survived the node loss within one attempt
        written = len(list((runs / run_id / "labels").iterdir()))
        assert outcome["files_before"] < written, "the node was removed after all output"
    committed = [p.name for p in runs.iterdir() if (p / "_SUCCESS").exists()]
    assert committed == [run_id]
    ids = committed_ids(runs / run_id)
    assert len(ids) == len(set(ids)) == len(expected) == 302  # nothing lost, nothing twice
    assert set(ids) == expected
