"""`raylabel label`: stream a drop through decode and inference actors into a committed run."""

from raylabel.label.stage import LabelResult, label

__all__ = ["LabelResult", "label"]
