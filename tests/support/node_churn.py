"""Run by tests/test_node_churn.py in its own process (one Ray cluster per process): label a
drop on a two-node `ray.cluster_utils.Cluster`, remove the worker node without warning once
output starts to appear, add a node back, and write what the label stage did to OUTCOME_JSON
(a file: raylet warnings reach this process's stdout at any time). Ray Data 2.60 gives up
on an inference actor lost with its node, so the stage's own answer is a fresh attempt into
a new run id (`infer.pipeline_attempts`): the lost attempt never commits.

usage: python node_churn.py DROP_DIR OUTPUT_ROOT OUTCOME_JSON
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

STORE = 150 * 2**20  # object store per node: small, several clusters share the machine


def main(drop: str, out: str, outcome_file: str) -> None:
    import ray
    from faults import small_blocks, wait_for_output
    from ray.cluster_utils import Cluster

    from raylabel.config import load_config
    from raylabel.io import layout
    from raylabel.io.storage import StorageOptions
    from raylabel.label import label

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": STORE, "include_dashboard": False},
    )
    worker = cluster.add_node(num_cpus=2, object_store_memory=STORE)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level=logging.WARNING)
    small_blocks()
    events: dict[str, object] = {}
    cfg = load_config(
        [],
        [
            f"drop.path={drop}",
            f"output.root={out}",
            "drop.name=churn",
            "model.image_size=32",
            "infer.num_actors=2",
            "infer.num_cpus_per_actor=0.5",
            "infer.batch_size=4",
            "infer.preprocess_batch_size=8",
            "output.rows_per_file=16",
            "review.size=8",
            "infer.actor_start_timeout_s=60",
        ],
    )
    outcome: dict[str, object] = {}

    def run_label() -> None:
        try:
            outcome["result"] = label(cfg)
        except BaseException as exc:  # reported, and the test fails on it
            outcome["error"] = f"{type(exc).__name__}: {exc}"

    # the label stage runs in a thread: Ray's node start-up installs signal handlers, so
    # adding a node must happen on the main thread
    labeling = threading.Thread(target=run_label, daemon=True)
    labeling.start()
    events["files_before"] = wait_for_output(Path(out) / "runs" / "churn")
    cluster.remove_node(worker, allow_graceful=False)  # the node dies mid-run
    events["removed_at"] = time.time()
    time.sleep(1.0)
    cluster.add_node(num_cpus=2, object_store_memory=STORE)  # autoscaler brings one back
    events["readded_at"] = time.time()
    labeling.join(timeout=360)
    if "result" not in outcome:
        events["error"] = str(outcome.get("error", "label stage still running after 360 s"))
        Path(outcome_file).write_text(json.dumps(events))
        sys.exit(1)
    result = outcome["result"]
    events["lost_attempts"] = result.summary.get("lost_attempts", [])
    events["committed"] = layout.latest_run(out, "churn", StorageOptions())
    Path(outcome_file).write_text(json.dumps({"run_id": result.run_id, **events}))
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
