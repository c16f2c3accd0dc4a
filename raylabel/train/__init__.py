"""`raylabel train`: fit the classifier on the seed, calibrate it, pick thresholds, publish
(past the promotion gate); `raylabel promote`: the gate's manual override."""

from raylabel.train.promotion import PromoteResult, promote
from raylabel.train.stage import TrainResult, train

__all__ = ["PromoteResult", "TrainResult", "promote", "train"]
