"""Readiness of a drop: the ready marker and the quiet period (real files, no Ray)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from raylabel.config import load_config
from raylabel.errors import ConfigError
from raylabel.io.storage import StorageOptions
from raylabel.nightly import drop_folders, waiting_reason

OPTS = StorageOptions()


def _drops(tmp_path: Path) -> Path:
    root = tmp_path / "drops"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.png").write_bytes(b"x")
    return root


def test_ready_marker_gates_a_drop(tmp_path: Path) -> None:
    root = _drops(tmp_path)
    cfg = load_config([], [f"drops.root={root}", "drops.ready_marker=_READY"])
    assert drop_folders(cfg, OPTS) == {"a": "a"}
    why = waiting_reason(cfg, "a", OPTS)
    assert why is not None and "no _READY marker" in why
    (root / "a" / "_READY").write_text("")
    assert waiting_reason(cfg, "a", OPTS) is None
    plain = load_config([], [f"drops.root={root}"])
    (root / "a" / "_READY").unlink()
    assert waiting_reason(plain, "a", OPTS) is None  # no marker configured: ready


def test_quiet_period_waits_for_the_newest_object(tmp_path: Path) -> None:
    root = _drops(tmp_path)
    cfg = load_config([], [f"drops.root={root}", "drops.min_quiet_s=600"])
    why = waiting_reason(cfg, "a", OPTS)
    assert why is not None and "drops.min_quiet_s=600" in why
    old = time.time() - 3600
    os.utime(root / "a" / "x.png", (old, old))
    assert waiting_reason(cfg, "a", OPTS) is None
    (root / "a" / "sub").mkdir()
    (root / "a" / "sub" / "new.png").write_bytes(b"y")  # a late file deep in the drop
    assert waiting_reason(cfg, "a", OPTS) is not None
    assert waiting_reason(cfg, "a", OPTS, now=time.time() + 601) is None


@pytest.mark.parametrize(
    ("key", "value"),
    [("drops.ready_marker", "READY.txt"), ("drops.ready_marker", "a/_READY"),
     ("drops.min_quiet_s", "-1")],
)  # fmt: skip
def test_bad_readiness_settings_stop_before_any_work(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_config([], [f"{key}={value}"])
