"""The credential grep of issue #8 item 11 must be able to fail: it finds planted leaks."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from secretscan import leaks_in_text, leaks_in_tree, secret_values

SECRET = "planted-secret-Zq9XvL2kP0"


def test_finds_raw_json_and_base64_leaks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    assert SECRET in secret_values()
    (tmp_path / "clean.json").write_text(json.dumps({"ok": True}))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "summary.json").write_text(json.dumps({"key": SECRET}))
    (tmp_path / "b.log").write_bytes(b"auth " + base64.b64encode(SECRET.encode()))
    leaks = leaks_in_tree(tmp_path)
    assert len(leaks) == 2 and all("clean.json" not in leak for leak in leaks), leaks
    assert leaks_in_text(f"error: {SECRET}", "exc")
    assert not leaks_in_text("error: ***", "exc")
