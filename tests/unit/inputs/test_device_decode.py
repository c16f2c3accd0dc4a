"""The device decoder (infer.decode_on_device) on CPU: torchvision's CPU decode_jpeg stands in
for nvjpeg, so the routing, the fallback and the framing run here exactly as on a GPU.

Measured tolerance against the CPU decoder (Pillow, with its JPEG draft mode), pixels in
[0, 1]: per-image mean absolute difference at most 0.012 (a 64 px image framed to 32 with
crop_fraction 0.875, where Pillow decodes at half scale and upsamples), typically 0.001;
over a whole batch 0.001-0.004. Single pixels differ by up to 0.21 on sharp edges.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from raylabel.demo.images import DEFAULT_CLASSES, render_shape
from raylabel.inputs.decode import ERROR, ERROR_STAGE, PIXELS, FetchDecode
from raylabel.inputs.device_decode import (
    PIXEL_BUDGET,
    DeviceDecode,
    device_decodable,
    exif_orientation,
    jpeg_header,
)
from raylabel.io.storage import StorageOptions

LIMIT = 89_478_485
IMAGE_MEAN_TOL = 0.02  # per image, [0, 1] units (measured max 0.012)
BATCH_MEAN_TOL = 0.006  # over every pixel of a batch (measured 0.001-0.004)


def _jpeg(img: Image.Image, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **kwargs)
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _shape(i: int, w: int, h: int) -> Image.Image:
    img = render_shape(DEFAULT_CLASSES[i % 6], np.random.default_rng(i), max(w, h), hard=False)
    return img.resize((w, h))


def _batch(payloads: list[bytes | None], duplicate: list[bool] | None = None) -> pa.Table:
    n = len(payloads)
    cols = {
        "item_id": [f"i{k}" for k in range(n)],
        "uri": [f"d.parquet#i{k}" for k in range(n)],
        "bytes": pa.array(payloads, pa.binary()),
    }
    if duplicate is not None:
        cols["duplicate"] = duplicate
    return pa.table(cols)


def _cpu(fetch: FetchDecode, batch: pa.Table) -> tuple[pa.Table, np.ndarray]:
    out = fetch(batch)
    return out, np.concatenate([c.to_numpy() for c in out.column(PIXELS).chunks])


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image mean absolute difference in [0, 1] units."""
    d = np.abs(a.astype(np.float64) - b.astype(np.float64)) / 255.0
    return d.reshape(len(a), -1).mean(axis=1)


SIZES = [(256, 256), (40, 30), (300, 200), (17, 64), (640, 480), (100, 100), (64, 64)]


@pytest.mark.parametrize(("size", "crop"), [(64, None), (224, None), (32, 0.875), (224, 0.875)])
def test_device_pixels_match_the_cpu_decoder(size: int, crop: float | None) -> None:
    payloads = [_jpeg(_shape(i, w, h)) for i, (w, h) in enumerate(SIZES)]
    grey = np.random.default_rng(1).integers(0, 255, (50, 70), dtype=np.uint8)
    payloads.append(_jpeg(Image.fromarray(grey, "L")))
    payloads.append(_jpeg(_shape(9, 256, 256), progressive=True))
    assert all(device_decodable(p, LIMIT) is not None for p in payloads)
    fetch = FetchDecode(StorageOptions(), size, LIMIT, crop_fraction=crop)
    batch = _batch(payloads)
    want_rows, want = _cpu(fetch, batch)
    rows, pixels = DeviceDecode(fetch, "cpu")(batch)
    assert pixels.dtype == torch.uint8 and tuple(pixels.shape) == (len(payloads), 3, size, size)
    assert rows.column(ERROR).null_count == len(payloads)
    assert rows.column_names == [c for c in want_rows.column_names if c != PIXELS]
    diff = _diff(pixels.numpy(), want)
    assert diff.max() < IMAGE_MEAN_TOL, diff
    assert diff.mean() < BATCH_MEAN_TOL, diff


def _corrupt_scan(good: bytes) -> bytes:
    """A complete JPEG (header and end marker intact) whose entropy-coded data is garbage."""
    data = bytearray(good)
    for k in range(data.index(b"\xff\xda") + 20, len(data) - 10):
        if k % 7 == 0:
            data[k] = 0xFF
    return bytes(data)


def test_mixed_batch_keeps_every_row_with_the_cpu_paths_errors() -> None:
    rng = np.random.default_rng(2)
    good = _jpeg(_shape(0, 48, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90°: the CPU decoder applies it, so it takes the CPU decoder
    rotated = _jpeg(Image.fromarray(rng.integers(0, 255, (20, 36, 3), dtype=np.uint8)), exif=exif)
    payloads: list[bytes | None] = [
        good,
        _png(_shape(1, 30, 30)),
        _corrupt_scan(_jpeg(_shape(2, 64, 64))),
        good[: len(good) // 2],  # truncated: no end marker
        _jpeg(_shape(3, 120, 100)),  # over max_pixels below
        rotated,
        _jpeg(Image.new("CMYK", (24, 24), (10, 200, 30, 0))),
        b"not an image",
        b"",
        None,
        good,  # a duplicate row
        _jpeg(_shape(4, 33, 21)),
    ]
    dup = [False] * 10 + [True, False]
    fetch = FetchDecode(StorageOptions(), 24, max_pixels=100 * 100)
    batch = _batch(payloads, dup)
    want_rows, want = _cpu(fetch, batch)
    rows, pixels = DeviceDecode(fetch, "cpu")(batch)
    assert rows.num_rows == batch.num_rows
    assert rows.column("item_id").equals(want_rows.column("item_id"))
    assert rows.column(ERROR).to_pylist() == want_rows.column(ERROR).to_pylist()
    assert rows.column(ERROR_STAGE).to_pylist() == want_rows.column(ERROR_STAGE).to_pylist()
    stages = rows.column(ERROR_STAGE).to_pylist()
    assert stages[:7] == [None, None, "decode", "decode", "decode", None, None]
    assert stages[7:] == ["decode", "decode", "decode", "input", None]
    assert "over the limit of 10000 (infer.max_pixels)" in rows.column(ERROR)[4].as_py()
    got = pixels.numpy()
    ok = np.array([s is None for s in stages])
    assert not got[~ok].any()
    assert (_diff(got[[0, 11]], want[[0, 11]]) < IMAGE_MEAN_TOL).all()  # decoded on the device
    for k in (1, 5, 6):  # PNG, EXIF-rotated, CMYK: the CPU decoder's own pixels
        assert np.array_equal(got[k], want[k]), k


def test_a_jpeg_the_batched_call_refuses_is_retried_alone_then_decoded_on_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torchvision.io

    payloads = [_jpeg(_shape(i, 40 + i, 40)) for i in range(4)]
    refused = payloads[2]
    real = torchvision.io.decode_jpeg
    calls: list[int] = []

    def picky(tensors: list[torch.Tensor], **kwargs: object) -> list[torch.Tensor]:
        calls.append(len(tensors))
        if any(bytes(t.numpy()) == refused for t in tensors):
            raise RuntimeError("nvjpeg: unsupported")
        return real(tensors, **kwargs)

    monkeypatch.setattr(torchvision.io, "decode_jpeg", picky)
    fetch = FetchDecode(StorageOptions(), 32, LIMIT)
    batch = _batch(payloads)
    _, want = _cpu(fetch, batch)
    rows, pixels = DeviceDecode(fetch, "cpu")(batch)
    assert calls == [4, 1, 1, 1, 1]  # the batch, then each item alone
    assert rows.column(ERROR).null_count == 4
    assert np.array_equal(pixels.numpy()[2], want[2])  # the CPU decoder's pixels
    assert (_diff(pixels.numpy(), want) < IMAGE_MEAN_TOL).all()


def test_batches_of_large_images_are_decoded_in_several_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torchvision.io

    monkeypatch.setattr("raylabel.inputs.device_decode.PIXEL_BUDGET", 64 * 64 * 2)
    real = torchvision.io.decode_jpeg
    calls: list[int] = []

    def counting(tensors: list[torch.Tensor], **kwargs: object) -> list[torch.Tensor]:
        calls.append(len(tensors))
        return real(tensors, **kwargs)

    monkeypatch.setattr(torchvision.io, "decode_jpeg", counting)
    payloads = [_jpeg(_shape(i, 64, 64)) for i in range(5)]
    fetch = FetchDecode(StorageOptions(), 16, LIMIT)
    rows, pixels = DeviceDecode(fetch, "cpu")(_batch(payloads))
    assert calls == [2, 2, 1] and PIXEL_BUDGET > 64 * 64 * 2
    assert rows.column(ERROR).null_count == 5 and pixels.any()


def test_empty_batch() -> None:
    fetch = FetchDecode(StorageOptions(), 16, LIMIT)
    rows, pixels = DeviceDecode(fetch, "cpu")(_batch([]))
    assert rows.num_rows == 0 and tuple(pixels.shape) == (0, 3, 16, 16)


def test_the_header_gate() -> None:
    good = _jpeg(_shape(0, 30, 20))
    head = jpeg_header(good)
    assert head is not None and (head.width, head.height, head.components) == (30, 20, 3)
    assert device_decodable(good, 600) is not None
    assert device_decodable(good, 599) is None  # over max_pixels: the CPU decoder refuses it
    assert device_decodable(good + b"\x00\x00", 600) is not None  # padding after the end
    assert device_decodable(good[:-2], 600) is None  # no end marker
    assert jpeg_header(b"\xff\xd8\xff") is None and jpeg_header(b"") is None
    assert jpeg_header(_png(_shape(0, 8, 8))) is None
    assert device_decodable(_jpeg(_shape(0, 30, 20), progressive=True), 600) is not None


def test_exif_orientation_reads_both_byte_orders() -> None:
    def tiff(order: bytes, value: int) -> bytes:
        big = order == b"MM"

        def u(n: int, k: int) -> bytes:
            return n.to_bytes(k, "big" if big else "little")

        entry = u(0x0112, 2) + u(3, 2) + u(1, 4) + u(value, 2) + b"\x00\x00"
        return order + u(42, 2) + u(8, 4) + u(1, 2) + entry

    assert exif_orientation(tiff(b"II", 6)) == 6
    assert exif_orientation(tiff(b"MM", 3)) == 3
    assert exif_orientation(tiff(b"II", 1)[:-14] + b"\x00\x00") == 1  # no entries: as stored
    assert exif_orientation(b"XX") == 0  # unreadable: the CPU decoder decides
