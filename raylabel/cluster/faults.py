"""Which pipeline failures are the cluster's and worth a fresh attempt.

Ray Data 2.60 does not retry an actor-pool task whose actor was lost with its node: the
task fails with ActorUnavailableError once Ray Core's own few retries land while the
node is still going away, and the whole dataset execution aborts. Nothing about the
items is wrong, so the label stage reruns the pipeline into a fresh run id instead of
failing the night (the failed attempt never commits, so nothing is duplicated). A user
error (our model raising, a bad config) is not a cluster fault and is never retried.
"""

from __future__ import annotations

# Ray's words for a lost node/process when the exception object itself did not survive
# (Ray Data re-raises some failures with the cause flattened into text).
_TEXT_MARKERS = (
    "The actor is temporarily unavailable",
    "node it was running on is dead",
    "because its node has died",
    "Timed out while starting actors",
    "owner has exited",
    "object's owner has exited",
    "ObjectLostError",
    "ActorUnavailableError",
    "NodeDiedError",
)


def cluster_fault(exc: BaseException) -> str | None:
    """A short reason if `exc` (or its cause chain) is a lost node, worker or object, or an
    actor pool that could not be placed on the cluster as it now is; None otherwise."""
    from ray import exceptions as rx

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, rx.ActorDiedError) and current.actor_init_failed:
            return None  # the model loader raised: rerunning cannot help
        if isinstance(current, rx.RayActorError | rx.NodeDiedError | rx.WorkerCrashedError):
            return f"{type(current).__name__}: {_first_line(current)}"
        if isinstance(current, rx.ObjectLostError | rx.LocalRayletDiedError):
            return f"{type(current).__name__}: {_first_line(current)}"
        if isinstance(current, rx.GetTimeoutError) and "starting actors" in str(current):
            return f"actor pool could not start: {_first_line(current)}"
        if isinstance(current, rx.RayTaskError) and isinstance(current.cause, BaseException):
            nested = cluster_fault(current.cause)
            if nested:
                return nested
        current = current.__cause__ or current.__context__
    text = str(exc)
    if "UserCodeException" in type(exc).__name__:
        return None
    for marker in _TEXT_MARKERS:
        if marker in text:
            return f"{type(exc).__name__}: {marker}"
    return None


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:160]
