"""A barrier between processes started separately: each drops a file in a folder and waits
until all parties have, so "at once" in a test really means at once."""

from __future__ import annotations

import os
import time
from pathlib import Path


def wait(folder: str, parties: int, timeout_s: float = 120.0) -> None:
    """Block until `parties` processes have called wait() on the same folder."""
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{os.getpid()}").write_text("")
    deadline = time.monotonic() + timeout_s
    while sum(1 for _ in path.iterdir()) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"barrier {folder}: not all {parties} parties arrived")
        time.sleep(0.01)
