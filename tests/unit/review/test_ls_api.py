"""The Label Studio client's failures are one line naming what to fix (the server itself is
exercised in tests/integration/test_labelstudio_server.py)."""

from __future__ import annotations

import socket

import pytest

from raylabel.config import load_config
from raylabel.errors import ConfigError, ReviewError
from raylabel.review.ls_api import LabelStudioClient, api_key_from_env


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends


def test_unreachable_server_names_the_key() -> None:
    client = LabelStudioClient(f"http://127.0.0.1:{_closed_port()}", "legacy-key", timeout_s=5)
    with pytest.raises(ReviewError, match=r"^review\.labelstudio\.url: cannot reach http://") as e:
        client.find_project("raylabel x")
    assert "\n" not in str(e.value)


def test_api_key_only_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    with pytest.raises(ReviewError, match="LABEL_STUDIO_API_KEY is not set"):
        api_key_from_env()
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "  k  ")
    assert api_key_from_env() == "k"


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("review.labelstudio.url=label-studio:8080", "review.labelstudio.url"),
        ("review.labelstudio.project=ab", "review.labelstudio.project"),
        ("review.labelstudio.batch=0", "review.labelstudio.batch"),
        ("review.reviewed=labelstudio", "review.reviewed"),  # no server to pull from
    ],
)
def test_bad_labelstudio_keys_are_refused_before_work(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=f"^{key.replace('.', '[.]')}:"):
        load_config([], [override])
