"""Connecting to Ray and sizing work to the cluster we landed on."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from raylabel.config import Config


@dataclass(frozen=True)
class ClusterShape:
    """The cluster's totals at one moment: the label pool and the training workers are sized to what
    is there, not to what the config assumed."""

    cpus: float
    gpus: float
    nodes: int


def connect(cfg: Config) -> None:
    """Join the cluster a job was submitted to (RAY_ADDRESS / run.ray_address) or start one."""
    import ray

    if ray.is_initialized():
        return
    address = cfg.run.ray_address or os.environ.get("RAY_ADDRESS")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    kwargs: dict = {"logging_level": logging.WARNING, "include_dashboard": False}
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(**kwargs)


def shape() -> ClusterShape:
    """The live cluster's CPUs, GPUs and alive nodes, read when work is planned, so a pool replanned
    after a lost node fits the smaller cluster."""
    import ray

    res = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return ClusterShape(cpus=float(res.get("CPU", 0)), gpus=float(res.get("GPU", 0)), nodes=nodes)


def quiet_data_context(show_progress: bool = True) -> None:
    """Ray Data settings for our pipelines, applied at run time (never at import)."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = show_progress
    ctx.print_on_execution_start = False
    ctx.enable_operator_progress_bars = False


def bound_actor_start(seconds: int) -> None:
    """Fail an inference pool that cannot be placed within `seconds` instead of waiting
    forever (a cluster that shrank after a lost node), so the label stage can replan the
    pool for the cluster as it is; 0 keeps Ray Data's wait-forever default."""
    from ray.data import DataContext

    DataContext.get_current().wait_for_min_actors_s = seconds if seconds > 0 else -1


def limit_object_store(megabytes: int) -> None:
    """Cap the object store Ray Data may fill, so memory stays flat however large the drop
    (without it, reads run ahead of a slow inference stage until the budget is full)."""
    if megabytes <= 0:
        return
    from ray.data import DataContext, ExecutionResources

    ctx = DataContext.get_current()
    ctx.execution_options.resource_limits = ExecutionResources.for_limits(
        object_store_memory=megabytes * 2**20
    )
