"""`raylabel nightly`: every ready drop under drops.root brought up to date, retraining
(past the promotion gate) when due, and the morning page."""

from raylabel.io.lease import Lease
from raylabel.nightly.drops import drop_folders, waiting_reason
from raylabel.nightly.retrain import ModelChoice, choose_model, retrain_decision
from raylabel.nightly.stage import DropOutcome, NightlyResult, nightly

__all__ = [
    "DropOutcome",
    "Lease",
    "ModelChoice",
    "NightlyResult",
    "choose_model",
    "drop_folders",
    "nightly",
    "retrain_decision",
    "waiting_reason",
]
