"""`raylabel demo`: generate data whose truth is known, run the real stages, grade them."""

from raylabel.demo.multilabel_run import run_multilabel_demo
from raylabel.demo.run import run_demo

__all__ = ["run_demo", "run_multilabel_demo"]
