"""Run by tests/test_node_churn.py in its own process (one Ray cluster per process): label a
drop on a two-node `ray.cluster_utils.Cluster`, remove the worker node without warning once
output starts to appear, add a node back, and print the committed run id. If the run fails
instead (Ray Data 2.60 can give up on an inference actor lost with its node), it must have
committed nothing, and a rerun on the healed cluster must commit.

usage: python node_churn.py DROP_DIR OUTPUT_ROOT
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


def main(drop: str, out: str) -> None:
    import ray
    from faults import small_blocks, wait_for_output
    from ray.cluster_utils import Cluster

    from raylabel import layout
    from raylabel.config import load_config
    from raylabel.label import label
    from raylabel.storage import StorageOptions

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": STORE, "include_dashboard": False},
    )
    worker = cluster.add_node(num_cpus=2, object_store_memory=STORE)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level=logging.WARNING)
    small_blocks()
    events: dict[str, float] = {}

    def churn() -> None:
        events["files_before"] = wait_for_output(Path(out) / "runs" / "churn")
        cluster.remove_node(worker, allow_graceful=False)  # the node dies mid-run
        events["removed_at"] = time.time()
        time.sleep(1.0)
        cluster.add_node(num_cpus=2, object_store_memory=STORE)  # autoscaler brings one back
        events["readded_at"] = time.time()

    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
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
        ],
    )
    try:
        result = label(cfg)
        events["first"] = "committed"
    except Exception as exc:  # Ray Data may give up on an actor lost with its node
        events["first"] = f"failed: {type(exc).__name__}"
        events["committed_after_failure"] = layout.latest_run(out, "churn", StorageOptions())
        thread.join(timeout=120)  # the replacement node is up before the rerun
        result = label(cfg)
    thread.join(timeout=120)
    print(json.dumps({"run_id": result.run_id, **events}), flush=True)
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
