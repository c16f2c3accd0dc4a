"""One exception hierarchy for the whole package.

`UsageError` and its children are mistakes a user can fix (a bad key, a missing path, a
model directory that is unsafe or does not match its card, reviews that do not fit the
run): the CLI prints their one-line message and exits with 2. Everything else is a
failure (exit 1). `StorageError` is a failure of the store itself; `InputNotFound` is
both: the store answered, and the path is not there.
"""

from __future__ import annotations

import os

_SECRET_ENV_VARS = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SESSION_TOKEN",
    "LABEL_STUDIO_API_KEY",
)


def redact(text: str) -> str:
    """Replace any credential value (AWS, Label Studio) in the environment by "***" before
    logging."""
    values = {os.environ.get(name, "") for name in _SECRET_ENV_VARS}
    for value in sorted((v for v in values if v), key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def first_line(exc: BaseException, default: str = "") -> str:
    """An exception's message as one redacted line (its first), for one-line errors and
    summaries; `default` when it has no message."""
    text = str(exc).strip()
    return redact(text.splitlines()[0]) if text else default


class UsageError(ValueError):
    """Something the user can fix; the message is one line naming the key, path or item."""


class ConfigError(UsageError):
    """A bad key or value; the message is one line that names the key."""


class InputError(UsageError):
    """The input exists but has the wrong shape (missing column, bad layout); exit 2."""


class ModelLoadError(UsageError):
    """A model directory that is incomplete, unsafe, or inconsistent with its card."""


class ReviewError(UsageError):
    """Reviewed labels that do not fit the run (unknown ids or classes, malformed file)."""


class StorageError(Exception):
    """A storage operation failed; the message is one line naming the URI, free of secrets."""

    def __init__(self, message: str) -> None:
        # Normalised here so that no caller can smuggle a traceback or a secret into the message.
        super().__init__(" ".join(redact(str(message)).split()))


class InputNotFound(InputError, StorageError):
    """The path, bucket or prefix does not exist or holds no files (the CLI exits with 2)."""

    def __init__(self, message: str) -> None:
        StorageError.__init__(self, message)


class StageFailed(Exception):
    """A stage that finished but with failures (e.g. one nightly drop); exit 1, after its
    summary lines are printed."""

    def __init__(self, message: str, lines: list[str]) -> None:
        super().__init__(message)
        self.lines = lines
