"""Train and label entirely against a real S3 HTTP endpoint on loopback (moto server):
seed, drop and output all `s3://`, reached through pyarrow's S3 client like AWS."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest
from s3server import S3Server, make_bucket, upload_tree
from secretscan import leaks_in_store, leaks_in_text, leaks_in_tree, ray_session_dir, secret_values

from raylabel.config import load_config
from raylabel.demo.images import ImageDemoSpec, write_image_demo
from raylabel.io import layout, storage
from raylabel.io.schema import LABEL_SCHEMA
from raylabel.label import label
from raylabel.models.card import read_card_uri
from raylabel.models.predictor import Predictor
from raylabel.train import train

pytestmark = pytest.mark.slow


def _overrides(url: str) -> list[str]:
    return [
        "seed.path=s3://rl-data/seed",
        "drop.path=s3://rl-data/drops/night-1",
        "output.root=s3://rl-out/raylabel",
        f"storage.endpoint_url={url}",
        "model.image_size=32",
        "train.epochs=1",
        "train.min_steps=0",
        "qc.min_support=5",
        "review.size=10",
    ]


def test_train_and_label_through_s3(
    ray_cluster: None, s3_server: S3Server, tmp_path, capfd: pytest.CaptureFixture[str]
) -> None:
    url = s3_server.endpoint_url
    make_bucket(url, "rl-data")
    make_bucket(url, "rl-out")
    spec = ImageDemoSpec(
        n_seed_per_class=12, n_drop=30, image_size=32, classes=("circle", "square")
    )
    data = write_image_demo(tmp_path / "data", spec)
    upload_tree(data.seed_dir, url, "s3://rl-data/seed")
    upload_tree(data.drop_dir, url, "s3://rl-data/drops/night-1")
    cfg = load_config([], _overrides(url))
    opts = storage.StorageOptions(endpoint_url=url)
    trained = train(cfg)
    assert trained.model_uri == f"s3://rl-out/raylabel/models/{trained.model_version}"
    card = read_card_uri(trained.model_uri, opts)  # the card round-trips through S3
    assert card.classes == ["circle", "square"]
    local = layout.fetch_model(cfg.output.root, trained.model_version, opts, tmp_path / "cache")
    assert Predictor.from_dir(local).card.weights_sha256 == card.weights_sha256

    result = label(cfg)
    run = result.run_uri
    assert run.startswith("s3://rl-out/raylabel/runs/night-1/")
    assert storage.exists(storage.join(run, "_SUCCESS"), opts)
    latest = storage.read_text("s3://rl-out/raylabel/runs/night-1/LATEST", opts).strip()
    assert latest == result.run_id
    fs, path = storage.resolve(storage.join(run, "labels"), opts)
    labels = pq.read_table(path, filesystem=fs)
    fs, path = storage.resolve(storage.join(run, "errors"), opts)
    errors = pq.read_table(path, filesystem=fs)
    assert labels.schema.remove_metadata() == LABEL_SCHEMA
    assert labels.num_rows + errors.num_rows == 32
    assert errors.num_rows == 2
    sample = pq.read_table(
        io.BytesIO(storage.read_bytes(storage.join(run, "review", "sample.parquet"), opts))
    )
    assert sample.num_rows > 0
    summary = storage.read_json(storage.join(run, "summary.json"), opts)
    assert summary["counts"]["input"] == 32
    assert label(cfg).skipped  # same inputs, same model: a no-op
    _assert_no_credentials_leak(cfg, capfd, tmp_path)


def _assert_no_credentials_leak(cfg: object, capfd: pytest.CaptureFixture[str], tmp) -> None:
    """Issue #8 item 11: the access key / secret / token of the environment appear nowhere:
    not in any object written (model card, weights, labels, summary.json, report.html,
    review files), not in what was printed, not in error messages, not in Ray's logs."""
    values = secret_values()
    assert len(values) == 3  # the fixture's distinctive fake credentials are in the env
    url = cfg.storage.endpoint_url  # type: ignore[attr-defined]
    opts = storage.StorageOptions(endpoint_url=url)
    leaks = leaks_in_store("s3://rl-out/raylabel", opts, values)
    leaks += leaks_in_tree(tmp, values)  # local staging, model cache copies
    with pytest.raises(storage.StorageError) as missing:
        label(load_config([], [*_overrides(url), "drop.path=s3://rl-data/drops/nope"]))
    with pytest.raises(storage.StorageError) as unreachable:  # nothing listens on port 9
        storage.read_bytes(
            "s3://rl-data/x", storage.StorageOptions(endpoint_url="http://127.0.0.1:9", retries=0)
        )
    for exc in (missing.value, unreachable.value):
        leaks += leaks_in_text(f"{exc} {exc!r} {exc.args}", "exception", values)
    out, err = capfd.readouterr()
    leaks += leaks_in_text(out + err, "captured stdout/stderr", values)
    session = ray_session_dir()
    if session is not None:
        leaks += leaks_in_tree(session / "logs", values)
    assert not leaks, leaks
