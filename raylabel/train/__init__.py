"""`raylabel train`: fit the classifier on the seed, calibrate it, pick thresholds, publish."""

from raylabel.train.stage import TrainResult, train

__all__ = ["TrainResult", "train"]
