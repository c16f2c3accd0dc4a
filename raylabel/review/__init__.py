"""The review loop: the stratified sample and the active queue of a run, Label Studio files,
and `sample` / `evaluate` on committed runs."""

from raylabel.review.by_task import draw_review
from raylabel.review.evaluate import EvaluateResult, evaluate_run, evaluate_with_truth
from raylabel.review.push import PushResult, push_review
from raylabel.review.redraw import RedrawResult, resample

__all__ = [
    "EvaluateResult",
    "PushResult",
    "RedrawResult",
    "draw_review",
    "evaluate_run",
    "evaluate_with_truth",
    "push_review",
    "resample",
]
