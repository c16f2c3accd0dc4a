"""Training machinery shared by the train stage and the seed audit: the Ray Train
per-worker loop, fold models as Ray tasks, and the seed as decoded datasets.

Why a room of its own: the audit trains fold models the way training does, and training
runs the audit when asked (`train.audit_seed`); with the machinery here, below both
stages, neither stage imports the other's insides.
"""
