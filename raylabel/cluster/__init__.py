"""The Ray cluster a stage runs on: connect once, read its shape, set the data context's
knobs explicitly, and recognise a lost node or worker."""

from raylabel.cluster.faults import cluster_fault
from raylabel.cluster.session import (
    ClusterShape,
    bound_actor_start,
    connect,
    limit_object_store,
    quiet_data_context,
    shape,
)

__all__ = [
    "ClusterShape",
    "bound_actor_start",
    "cluster_fault",
    "connect",
    "limit_object_store",
    "quiet_data_context",
    "shape",
]
