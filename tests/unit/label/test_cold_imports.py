"""What a cold Ray worker imports for each part of the label pipeline. Every read, write and
scan task may start in a fresh worker process, and every actor of every drop does: a heavy
import there is paid again per process (torch ~1.5 s, scipy's statistics ~0.7 s on the CI
machine), and on a small drop those imports outweigh the labeling."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "scipy", "matplotlib", "transformers", "torchvision", "sklearn")


def _loaded_after(module: str) -> set[str]:
    code = (
        "import json, sys\n"
        f"import {module}\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "module",
    ["raylabel.label.sink", "raylabel.inputs.packed", "raylabel.review.draw", "raylabel.label"],
)
def test_read_write_and_scan_tasks_skip_torch(module: str) -> None:
    assert _loaded_after(module) & {"torch", "matplotlib", "transformers", "torchvision"} == set()


def test_a_multiclass_actor_needs_torch_but_not_scipy() -> None:
    # the multilabel rows and sigmoid (scipy-backed statistics) load only for a multilabel card
    assert _loaded_after("raylabel.label.actor") == {"torch"}
