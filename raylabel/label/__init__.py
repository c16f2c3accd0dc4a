"""`raylabel label`: stream a drop through decode and inference actors into a committed run.

The public names load on first use: Ray's read, write and actor workers import this package
on their way to `sink` or `actor`, and must not pay for the driver-side stage (planning,
statistics, the report) in every cold worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from raylabel.label.stage import LabelResult, label

__all__ = ["LabelResult", "label"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from raylabel.label import stage

        return getattr(stage, name)
    raise AttributeError(f"module 'raylabel.label' has no attribute {name!r}")
