"""How the label stage spends the cluster: actor count and CPU/GPU reservations for reads,
decode, inference and writes, so no operator starves another."""

from __future__ import annotations

from dataclasses import dataclass

from raylabel import cluster
from raylabel.config import Config
from raylabel.inputs import sources


@dataclass(frozen=True)
class PoolPlan:
    """The label stage's reservations for one attempt: actor count and per-operator CPU/GPU shares,
    chosen so no operator starves another."""

    num_actors: int
    cpus_per_actor: float
    gpus_per_actor: float
    torch_threads: int
    decode_cpus: float
    write_cpus: float = 0.25
    decode_in_actor: bool = False
    read_cpus: float = 1.0
    read_tasks: int = 0  # packed-Parquet reads in flight at once; 0 = as many as fit


def decode_in_actor(cfg: Config, plan: sources.SourcePlan) -> bool:
    """Whether the inference actors decode their own items. On CPU-only inference over
    inline payloads a separate decode stage only adds an object-store hop and a scheduling
    step per block, and the cores are better spent as one decode+forward actor each; a GPU
    actor needs decode tasks to feed it unless it decodes on its device; items fetched one by
    one from object storage need decode tasks to fetch them in parallel."""
    mode = cfg.infer.decode_in_actor
    if mode != "auto":
        return mode == "always"
    if decodes_on_device(cfg, plan):
        return True
    return not cfg.infer.use_gpu and plan.kind == "parquet"


def decodes_on_device(cfg: Config, plan: sources.SourcePlan) -> bool:
    """The driver's half of infer.decode_on_device: whether the actors are handed the items to
    decode on their device (each then decodes there only if it has CUDA, for auto)."""
    mode = cfg.infer.decode_on_device
    if cfg.modality != "image" or mode == "never" or cfg.infer.decode_in_actor == "never":
        return False
    return mode == "always" or (cfg.infer.use_gpu and plan.kind == "parquet")


def plan_pool(cfg: Config, shape: cluster.ClusterShape, in_actor: bool = False) -> PoolPlan:
    """Actor count and reservations. Reads, decode, inference and writes each get a share:
    an operator left with no CPU budget stalls (a starved write step holds every labeled
    row in the object store until the end), and a pool that takes every CPU hangs reads."""
    inf = cfg.infer
    write = 0.25
    read = 0.25 if in_actor else 1.0  # Ray Data's default read reservation is a whole CPU
    if inf.use_gpu:
        n = inf.num_actors or max(1, int(shape.gpus))
        cpus = inf.num_cpus_per_actor or 1.0
        return PoolPlan(n, cpus, 1.0, max(1, int(cpus)), 1.0, write, in_actor, read)
    if in_actor and shape.cpus >= 2:
        # one single-threaded actor per core: decode and forward back to back, no thread
        # oversubscription; reads and writes are light and get a quarter CPU each. Ray
        # Data's file-listing task reserves a whole CPU while it runs (not configurable in
        # Ray 2.60), so the actors' reservations leave one CPU free or nothing ever starts.
        n = inf.num_actors or max(1, int(shape.cpus))
        cpus = inf.num_cpus_per_actor or max(0.05, (shape.cpus - 1.0 - write) / n)
        threads = max(1, int(shape.cpus // n))
        # quarter-CPU reads would run 4 per free core, each in a new worker process that
        # imports Ray Data (~1 CPU-second); one read per two cores keeps the actors fed
        # (bench/label_throughput.py png32 at 100k: 1.07-1.09x faster than uncapped)
        reads = max(1, int(shape.cpus) // 2)
        return PoolPlan(n, cpus, 0.0, threads, 0.0, write, True, read, reads)
    left = max(0.5, shape.cpus - write)
    n = inf.num_actors or max(1, int(shape.cpus // 2))
    cpus = inf.num_cpus_per_actor or max(0.5, min(4.0, (left - 0.5) / (2 * n)))
    decode = max(0.25, min(1.0, (left - n * cpus) / 2))
    return PoolPlan(n, cpus, 0.0, max(1, round(cpus)), decode, write)
