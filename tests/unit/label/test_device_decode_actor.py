"""infer.decode_on_device in the inference actor and the pool plan: on CPU, auto and never leave
today's path untouched (same rows, same labels), always runs the device decoder on CPU, and the
config refuses what it cannot do."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from raylabel.config import load_config
from raylabel.demo.images import DEFAULT_CLASSES, render_shape
from raylabel.errors import ConfigError
from raylabel.inputs.decode import FetchDecode
from raylabel.inputs.device_decode import DeviceDecode
from raylabel.io.storage import StorageOptions
from raylabel.label.actor import InferenceActor, device_decoder
from raylabel.label.pool import decode_in_actor, decodes_on_device
from raylabel.models.card import ModelCard
from raylabel.models.image import build_image_model
from raylabel.models.predictor import EnsemblePredictor, Predictor

CLASSES = ["a", "b", "c"]
SIZE = 32


def _predictor(seed: int = 0) -> Predictor:
    torch.manual_seed(seed)
    card = ModelCard(
        "m-test", "small_cnn", "image", CLASSES, {"image_size": SIZE},
        thresholds={c: 0.4 for c in CLASSES},
    )  # fmt: skip
    return Predictor(build_image_model("small_cnn", len(CLASSES)).eval(), card, "cpu")


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _drop_batch() -> pa.Table:
    """JPEGs of several sizes, a PNG and three bad items."""
    payloads: list[bytes | None] = []
    for i in range(12):
        img = render_shape(DEFAULT_CLASSES[i % 6], np.random.default_rng(i), 96, hard=False)
        payloads.append(_encode(img.resize((96 + 8 * i, 80)), "JPEG"))
    payloads += [_encode(Image.new("RGB", (40, 40), (9, 99, 199)), "PNG"), b"junk", b"", None]
    n = len(payloads)
    return pa.table(
        {
            "item_id": [f"i{k:02d}" for k in range(n)],
            "uri": [f"d.parquet#i{k:02d}" for k in range(n)],
            "bytes": pa.array(payloads, pa.binary()),
        }
    )


def _fetch() -> FetchDecode:
    return FetchDecode(StorageOptions(), SIZE, 89_478_485)


def _actor(mode: str | None, preprocess: Any) -> InferenceActor:
    pred = _predictor()
    kwargs = {} if mode is None else {"decode_on_device": mode}
    return InferenceActor(lambda: pred, "r", "d", preprocess=preprocess, **kwargs)


def _without_time(table: pa.Table) -> pa.Table:
    return table.drop_columns(["labeled_at"])


def _separate_stage(batch: pa.Table) -> pa.Table:
    """Today's GPU layout: a FetchDecode task, then the actor on its numpy batch."""
    from ray.data.block import BlockAccessor

    decoded = BlockAccessor.for_block(_fetch()(batch)).to_batch_format("numpy")
    return _actor(None, None)(decoded)


def test_auto_and_never_on_cpu_are_todays_path() -> None:
    batch = _drop_batch()
    want = _without_time(_separate_stage(batch))
    for mode in (None, "auto", "never"):  # None: the actor's default
        actor = _actor(mode, _fetch())
        assert actor.device_decode is None
        assert _without_time(actor(batch)).equals(want), mode


def test_always_on_cpu_decodes_with_the_device_decoder() -> None:
    batch = _drop_batch()
    want = _separate_stage(batch)
    actor = _actor("always", _fetch())
    assert isinstance(actor.device_decode, DeviceDecode) and actor.device_decode.device == "cpu"
    got = actor(batch)
    assert got.num_rows == batch.num_rows
    for col in ("item_id", "uri", "error", "error_stage"):
        assert got.column(col).equals(want.column(col)), col
    assert got.column("error_stage").to_pylist()[-3:] == ["decode"] * 3
    # pixels within resize rounding of the CPU decoder's: scores within a hair
    diff = np.abs(np.asarray(got["confidence"]) - np.asarray(want["confidence"]))
    assert diff.max() < 0.02, diff


def test_device_decoder_choice() -> None:
    fetch, cpu = _fetch(), _predictor()
    cuda = SimpleNamespace(device="cuda", family=cpu.family)  # constructing it touches no GPU
    assert device_decoder(fetch, cpu, "auto") is None
    assert device_decoder(fetch, cpu, "never") is None
    assert isinstance(device_decoder(fetch, cpu, "always"), DeviceDecode)
    assert isinstance(device_decoder(fetch, cuda, "auto"), DeviceDecode)  # type: ignore[arg-type]
    assert device_decoder(fetch, cuda, "never") is None  # type: ignore[arg-type]
    assert device_decoder(None, cpu, "always") is None  # a separate decode stage feeds it
    assert device_decoder(lambda t: t, cpu, "always") is None  # not an image decoder
    ensemble = EnsemblePredictor([cpu, _predictor(1)], cpu.card)
    assert isinstance(device_decoder(fetch, ensemble, "always"), DeviceDecode)
    assert device_decoder(fetch, ensemble, "auto") is None


def test_predictor_takes_pixels_already_on_the_device() -> None:
    pred = _predictor()
    pixels = np.random.default_rng(0).integers(0, 255, (5, 3, SIZE, SIZE), dtype=np.uint8)
    rows = np.array([True, False, True, True, False])
    host = pred.logits_for({"pixels": pixels}, rows)
    tensor = pred.logits_for({"pixels": torch.from_numpy(pixels)}, rows)
    assert np.array_equal(host, tensor)


@pytest.mark.parametrize(
    ("overrides", "kind", "on_device", "in_actor"),
    [
        ([], "parquet", False, True),  # CPU: today's choices
        ([], "folder", False, False),
        (["infer.decode_on_device=never"], "parquet", False, True),
        (["infer.use_gpu=true"], "parquet", True, True),  # auto: the GPU decodes
        (["infer.use_gpu=true"], "folder", False, False),  # items fetched one by one
        (["infer.use_gpu=true", "infer.decode_on_device=never"], "parquet", False, False),
        (["infer.decode_on_device=always"], "folder", True, True),
        (["infer.decode_on_device=always", "infer.decode_in_actor=always"], "folder", True, True),
        (["infer.use_gpu=true", "infer.decode_in_actor=never"], "parquet", False, False),
        (
            ["modality=text", "model.arch=rnn", "infer.decode_on_device=always"],
            "parquet",
            False,
            True,
        ),
    ],
)
def test_pool_hands_the_actors_their_items_to_decode_on_device(
    overrides: list[str], kind: str, on_device: bool, in_actor: bool
) -> None:
    cfg = load_config([], overrides)
    plan = SimpleNamespace(kind=kind)
    assert decodes_on_device(cfg, plan) is on_device  # type: ignore[arg-type]
    assert decode_in_actor(cfg, plan) is in_actor  # type: ignore[arg-type]


def test_config_checks_decode_on_device() -> None:
    assert load_config([], []).infer.decode_on_device == "auto"
    with pytest.raises(ConfigError, match=r"^infer\.decode_on_device: 'gpu' is not one of"):
        load_config([], ["infer.decode_on_device=gpu"])
    with pytest.raises(ConfigError, match=r"^infer\.decode_on_device: always .*never"):
        load_config([], ["infer.decode_on_device=always", "infer.decode_in_actor=never"])
