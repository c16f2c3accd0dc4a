"""How many Ray Train workers a training gets, and what each reserves and runs."""

from raylabel.cluster import ClusterShape
from raylabel.config import TrainConfig
from raylabel.train.stage import worker_plan


def test_auto_on_cpu_is_two_workers_sharing_the_node() -> None:
    n, cpus, threads = worker_plan(TrainConfig(), ClusterShape(cpus=2, gpus=0, nodes=1))
    assert (n, cpus, threads) == (2, 0.75, 1)  # half a CPU left for the decode tasks


def test_auto_on_a_one_cpu_node_is_one_worker() -> None:
    assert worker_plan(TrainConfig(), ClusterShape(cpus=1, gpus=0, nodes=1)) == (1, 0.5, 1)


def test_auto_on_a_cpu_cluster_uses_one_nodes_cores() -> None:
    n, cpus, threads = worker_plan(TrainConfig(), ClusterShape(cpus=32, gpus=0, nodes=4))
    assert (n, cpus, threads) == (2, 3.75, 4)


def test_auto_with_gpus_is_one_ddp_worker_per_gpu() -> None:
    t = TrainConfig(use_gpu=True)
    assert worker_plan(t, ClusterShape(cpus=16, gpus=4, nodes=2)) == (4, 1.0, 1)


def test_an_explicit_count_keeps_ddp_and_leaves_room_for_decode() -> None:
    n, cpus, threads = worker_plan(TrainConfig(num_workers=2), ClusterShape(2, 0, 1))
    assert (n, cpus, threads) == (2, 0.75, 1)
