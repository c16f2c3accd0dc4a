"""`output.*`, `storage.*`, `run.*`, `drops.*`, `nightly.*`: where results go and how runs
are controlled."""

from __future__ import annotations

from dataclasses import dataclass

from raylabel.config.fields import at_least, positive, safe_name, setting
from raylabel.errors import ConfigError

READY_MARKERS = ("_READY", "_SUCCESS")


@dataclass
class OutputConfig:
    """Where every result is written."""

    root: str = setting(
        "./raylabel-out",
        "where models/, runs/, feedback/, audit/ and locks/ live; local or s3:// (shared "
        "storage on a multi-node cluster)",
    )
    rows_per_file: int = setting(
        50_000,
        "rows gathered per write of labels/ and errors/, so at most about the rows per Parquet "
        "file; a drop under 8 such files is written in about 8 parts (at least 1,000 rows "
        "each) so writing keeps pace with labeling",
    )

    def check(self) -> None:
        """Refuse a bad value of this section before any work starts (one line, the key)."""
        if not self.root:
            raise ConfigError("output.root: must not be empty")
        at_least("output.rows_per_file", self.rows_per_file, 1)


@dataclass
class StorageConfig:
    """S3 access (local paths need none); credentials come only from the environment."""

    endpoint_url: str | None = setting(
        None,
        "an S3-compatible endpoint (MinIO, Ceph, a test server), http(s)://host:port; null = "
        "AWS. Credentials only from the environment",
    )
    region: str | None = setting(None, "S3 region; null = the environment's")
    retries: int = setting(
        10,
        "S3 client attempts per request (AWS standard retry: backoff on 5xx, throttling, resets)",
    )
    connect_timeout_s: float | None = setting(
        None,
        "TCP connect timeout per attempt, so a dead endpoint fails the run instead of "
        "hanging; null = AWS SDK default (about 1 s)",
    )

    def check(self) -> None:
        """Refuse a bad value of this section before any work starts (one line, the key)."""
        if self.endpoint_url is not None and not self.endpoint_url.startswith(
            ("http://", "https://")
        ):
            raise ConfigError("storage.endpoint_url: must start with http:// or https://")
        at_least("storage.retries", self.retries, 0)
        if self.connect_timeout_s is not None:
            positive("storage.connect_timeout_s", self.connect_timeout_s)


@dataclass
class RunConfig:
    """Which run, which model, which Ray cluster."""

    run_id: str | None = setting(
        None,
        "label: the run's id; null = a new one; an existing run id is refused",
    )
    force: bool = setting(
        False,
        "label a drop again although a committed run of the same inputs and model exists (a "
        "new complete run)",
    )
    model_version: str | None = setting(
        None,
        "train: the version to publish (null = a new id); label/sample/evaluate/nightly: the "
        "model to use (null = models/LATEST)",
    )
    ray_address: str | None = setting(
        None,
        "the Ray cluster to join; null = RAY_ADDRESS, else a local Ray",
    )

    def check(self) -> None:
        """Refuse a bad value of this section before any work starts (one line, the key)."""
        for key, value in (("run.run_id", self.run_id), ("run.model_version", self.model_version)):
            if value is not None and not safe_name(value):
                raise ConfigError(f"{key}: {value!r} must be a plain name (letters, digits, -_.)")


@dataclass
class DropsConfig:
    """`raylabel nightly`: where drops arrive."""

    root: str | None = setting(
        None,
        "nightly: a prefix whose children are drops (s3://bucket/drops/); required by nightly",
    )
    ready_marker: str | None = setting(
        None,
        "nightly labels only drops holding this object (_READY or _SUCCESS, written by the "
        "producer last; never an item). None = every drop is ready",
    )
    min_quiet_s: float = setting(
        0.0,
        "nightly leaves a drop whose newest object is younger than this for the next night "
        "(a producer may still be writing); 0 = no wait",
    )

    def check(self) -> None:
        """Refuse a bad value of this section before any work starts (one line, the key)."""
        at_least("drops.min_quiet_s", self.min_quiet_s, 0.0)
        if self.ready_marker is not None and self.ready_marker not in READY_MARKERS:
            raise ConfigError(
                f"drops.ready_marker: one of {', '.join(READY_MARKERS)} (names every listing "
                f"skips as a marker, so the marker is never an item), got {self.ready_marker!r}"
            )


@dataclass
class NightlyConfig:
    """`raylabel nightly`: when to retrain, and drop leases."""

    retrain_min_feedback: int = setting(
        200,
        "retrain when this many reviewed items arrived in feedback/ since the model was trained",
    )
    max_model_age_days: float = setting(7.0, "... or when the model is older than this")
    lock_ttl_s: int = setting(
        6 * 3600,
        "a drop's lease expires after this many seconds, so a crashed run frees it; keep it "
        "above the longest run",
    )

    def check(self) -> None:
        """Refuse a bad value of this section before any work starts (one line, the key)."""
        at_least("nightly.retrain_min_feedback", self.retrain_min_feedback, 1)
        positive("nightly.max_model_age_days", self.max_model_age_days)
        at_least("nightly.lock_ttl_s", self.lock_ttl_s, 1)
