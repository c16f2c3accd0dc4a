"""Which read failures fail the run (store outage) and which are the item's error row."""

from __future__ import annotations

import pytest

from raylabel.io.failures import StorageUnavailable, pipeline_failure, store_failure
from raylabel.io.storage import StorageOptions, s3_filesystem

URI = "s3://b/drops/d/x.png"


@pytest.mark.parametrize(
    "text",
    [
        "When reading information for key 'x' in bucket 'b': AWS Error NETWORK_CONNECTION "
        "during HeadObject operation: curlCode: 7, Could not connect to server",
        "AWS Error SLOW_DOWN during GetObject operation: Please reduce your request rate.",
        "AWS Error UNKNOWN (HTTP status 503) during GetObject operation: Service Unavailable",
        "AWS Error INTERNAL_FAILURE during GetObject operation: We encountered an internal error",
        "AWS Error ACCESS_DENIED during GetObject operation: Access Denied",
    ],
)
def test_store_failures_fail_the_run(text: str) -> None:
    failure = store_failure(URI, OSError(text))
    assert isinstance(failure, StorageUnavailable)
    message = str(failure)
    assert message.startswith(f"object store unavailable: read failed for {URI}: ")
    assert "not committed" in message and "\n" not in message


@pytest.mark.parametrize(
    "exc",
    [
        OSError("AWS Error NO_SUCH_KEY during GetObject operation: The key does not exist"),
        OSError("AWS Error NO_SUCH_BUCKET during GetObject operation: no bucket"),
        PermissionError(13, "Permission denied"),
        IsADirectoryError(21, "Is a directory"),
        OSError("local read failed"),
    ],
)
def test_item_failures_stay_item_errors(exc: OSError) -> None:
    assert store_failure(URI, exc) is None


def test_pipeline_failure_finds_the_cause_in_a_wrapped_ray_error() -> None:
    inner = StorageUnavailable("object store unavailable: read failed for s3://b/x: gone")
    try:
        try:
            raise inner
        except StorageUnavailable as exc:
            raise RuntimeError("UDF failed to process a data block.") from exc
    except RuntimeError as wrapped:
        found = pipeline_failure(wrapped, "s3://b/runs/d/r1")
    assert found is not None and str(found) == str(inner)
    # Ray may only carry the text (a traceback) of the remote exception
    text = RuntimeError(
        "ray::MapBatches(FetchDecode)()\nTraceback...\n"
        "raylabel.io_errors.StorageUnavailable: object store unavailable: read failed for "
        "s3://b/x: gone\n\nThe above exception was the direct cause"
    )
    assert str(pipeline_failure(text, "s3://b/runs/d/r1")).endswith(
        "read failed for s3://b/x: gone"
    )
    write = OSError(
        "Traceback...\nOSError: AWS Error NETWORK_CONNECTION during PutObject operation"
    )
    found = pipeline_failure(write, "s3://b/runs/d/r1")
    assert str(found).startswith("object store unavailable: PutObject under s3://b/runs/d/r1")
    assert pipeline_failure(ValueError("a bug"), "s3://b/runs/d/r1") is None


def test_connect_timeout_reaches_the_s3_client() -> None:
    # the filesystem's own reconstruction arguments are what its AWS SDK client was built with
    # (and what Ray workers rebuild it from when it is shipped to them)
    fs = s3_filesystem(
        StorageOptions(endpoint_url="http://127.0.0.1:9", connect_timeout_s=0.5, retries=4), "b"
    )
    built = fs.__reduce__()[1][0]
    assert built["connect_timeout"] == 0.5
    assert built["endpoint_override"] == "127.0.0.1:9" and built["scheme"] == "http"
    default = s3_filesystem(StorageOptions(endpoint_url="http://127.0.0.1:9"), "b")
    assert default.__reduce__()[1][0]["connect_timeout"] == -1.0  # unset: the SDK's default
    with pytest.raises(ValueError, match=r"storage\.connect_timeout_s"):
        StorageOptions(connect_timeout_s=0)


def test_model_load_failure_in_an_actor_becomes_one_line() -> None:
    """The store dying while inference actors load the model: Ray raises ActorDiedError
    with the constructor's traceback in its text; the run fails with the storage line."""
    trace = (
        "The actor died because of an error raised in its creation task, "
        "ray::MapWorker(MapBatches(InferenceActor)).__init__() (pid=1)\n"
        '  File "raylabel/storage.py", line 426, in _read\n'
        "raylabel.storage.StorageError: read failed for s3://b/models/m-1/model.safetensors: "
        "cannot reach S3 endpoint (curlCode: 7, Could not connect to server)\n"
    )
    failure = pipeline_failure(RuntimeError(trace), "s3://b/runs/d/r-1")
    assert failure is not None
    line = str(failure)
    assert "\n" not in line
    assert line.startswith("read failed for s3://b/models/m-1/model.safetensors: cannot reach")
