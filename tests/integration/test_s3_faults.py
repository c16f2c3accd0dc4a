"""Issue #8 items 3 and 4: the S3 endpoint misbehaves under a real labeling run.

A fault-injecting proxy (tests/faultproxy.py) sits between raylabel and the loopback S3 server.
Item 3: some GETs/HEADs answered 503 SlowDown, some PUTs reset -> retried with backoff by the
S3 client; the committed run is identical to a clean run of the same drop and model.
Item 4: the endpoint dies for good mid-run -> the run fails with one clear line naming the
URI (no credentials), nothing is committed; once it is back, a rerun is complete.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from faultproxy import FaultProxy
from modelutil import publish_random_model
from s3server import S3Server, make_bucket, s3_env, upload_tree

from raylabel.config import load_config
from raylabel.demo.images import ImageDemoSpec, write_image_demo
from raylabel.io import layout, listing, storage
from raylabel.label import LabelResult, label

pytestmark = pytest.mark.slow
BUCKET = "rl-faults"
DROP = "night"


@dataclass
class Env:
    server: S3Server
    proxy: FaultProxy
    version: str
    n_items: int
    clean: pa.Table
    clean_errors: pa.Table


def _cfg(endpoint: str, root: str, version: str, *extra: str) -> object:
    return load_config(
        [],
        [
            f"drop.path=s3://{BUCKET}/drops/{DROP}",
            f"output.root=s3://{BUCKET}/{root}",
            f"storage.endpoint_url={endpoint}",
            f"run.model_version={version}",
            "storage.retries=6",
            "infer.batch_size=16",
            "infer.preprocess_batch_size=16",
            "review.size=5",
            "review.uncertain_size=5",
            *extra,
        ],
    )


def _tables(result: LabelResult, opts: storage.StorageOptions) -> tuple[pa.Table, pa.Table]:
    out = []
    for sub in ("labels", "errors"):
        uri = storage.join(result.run_uri, sub)
        if not storage.exists(uri, opts):
            out.append(pa.table({"item_id": pa.array([], pa.string())}))
            continue
        parts = [
            pq.read_table(io.BytesIO(storage.read_bytes(f.uri, opts)))
            for f in listing.list_files(uri, opts, extensions=[".parquet"])
        ]
        out.append(pa.concat_tables(parts).sort_by("item_id"))
    return out[0], out[1]


def _same_labels(a: pa.Table, b: pa.Table) -> None:
    """Same ids once each, same labels and acceptance, same confidences (float tolerance:
    batches may be cut differently)."""
    ids = a.column("item_id").to_pylist()
    assert len(ids) == len(set(ids))
    assert ids == b.column("item_id").to_pylist()
    for col in ("label", "label_index", "accepted", "topk_labels"):
        assert a.column(col).to_pylist() == b.column(col).to_pylist(), col
    np.testing.assert_allclose(
        a.column("confidence").to_numpy(), b.column("confidence").to_numpy(), atol=1e-5
    )


@pytest.fixture(scope="module")
def env(
    ray_cluster: None, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("s3faults")
    url = s3_server.endpoint_url
    make_bucket(url, BUCKET)
    spec = ImageDemoSpec(n_seed_per_class=1, n_drop=40, image_size=32, classes=("circle", "square"))
    data = write_image_demo(tmp / "data", spec)
    upload_tree(data.drop_dir, url, f"s3://{BUCKET}/drops/{DROP}")
    n_items = sum(1 for p in data.drop_dir.rglob("*") if p.is_file())
    version = publish_random_model(tmp, ["circle", "square"])
    for root in ("clean", "faulty", "dead"):
        upload_tree(tmp / "out" / "models", url, f"s3://{BUCKET}/{root}/models")
    clean_cfg = _cfg(url, "clean", version)
    clean = label(clean_cfg)  # type: ignore[arg-type]
    labels, errors = _tables(clean, storage.StorageOptions(endpoint_url=url))
    assert labels.num_rows + errors.num_rows == n_items
    proxy = FaultProxy(url).start()
    try:
        yield Env(s3_server, proxy, version, n_items, labels, errors)
    finally:
        proxy.stop()


def _committed(opts: storage.StorageOptions, root: str) -> list[str]:
    runs = f"s3://{BUCKET}/{root}/runs/{DROP}"
    if not storage.exists(runs, opts):
        return []
    return [f.rel_path for f in listing.list_files(runs, opts) if f.rel_path.endswith("LATEST")] + [
        f.rel_path
        for f in listing.list_files(runs, opts)
        if f.rel_path.endswith("_SUCCESS") or "/_SUCCESS" in f.rel_path
    ]


def test_throttling_and_resets_are_retried_output_identical(env: Env) -> None:
    proxy = env.proxy
    proxy.set_schedule(
        every={"GET": 8, "HEAD": 9, "PUT": 3},
        kind={"GET": "503", "HEAD": "503", "PUT": "reset"},
    )
    try:
        result = label(_cfg(proxy.url, "faulty", env.version))  # type: ignore[arg-type]
    finally:
        proxy.set_schedule({}, {})
    assert proxy.injected["GET:503"] >= 3, proxy.injected
    assert proxy.injected["PUT:reset"] >= 2, proxy.injected
    assert proxy.injected["HEAD:503"] >= 1, proxy.injected
    direct = storage.StorageOptions(endpoint_url=env.server.endpoint_url)
    assert layout.latest_run(f"s3://{BUCKET}/faulty", DROP, direct) == result.run_id
    labels, errors = _tables(result, direct)
    _same_labels(labels, env.clean)
    assert errors.select(["item_id", "stage"]) == env.clean_errors.select(["item_id", "stage"])
    assert result.summary["counts"]["input"] == env.n_items


def test_endpoint_dies_mid_run_nothing_committed_then_rerun_completes(env: Env) -> None:
    proxy = env.proxy
    direct = storage.StorageOptions(endpoint_url=env.server.endpoint_url)
    cfg = _cfg(proxy.url, "dead", env.version, "storage.retries=3")  # fail fast once dead
    proxy.die_after("GET", 15)  # after planning, part-way through fetching the items
    with pytest.raises(storage.StorageError) as info:
        label(cfg)  # type: ignore[arg-type]
    assert proxy.dead
    message = str(info.value)
    assert "\n" not in message
    assert "object store unavailable" in message or "cannot reach" in message, message
    assert f"s3://{BUCKET}/" in message, message
    for secret in s3_env(env.server.endpoint_url).values():
        if secret.startswith("testing-"):
            assert secret not in message
    assert _committed(direct, "dead") == []
    assert layout.latest_run(f"s3://{BUCKET}/dead", DROP, direct) is None

    proxy.revive()
    result = label(cfg)  # type: ignore[arg-type]
    assert layout.latest_run(f"s3://{BUCKET}/dead", DROP, direct) == result.run_id
    labels, errors = _tables(result, direct)
    _same_labels(labels, env.clean)
    assert labels.num_rows + errors.num_rows == env.n_items
