"""raylabel.preprocess without Ray: decode_image on awkward images, FetchDecode on mixed batches."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from raylabel.inputs.decode import ERROR, ERROR_STAGE, PIXELS, FetchDecode, ItemError, decode_image
from raylabel.io.storage import StorageOptions

S = 16
LIMIT = 89_478_485  # the infer.max_pixels default


def _encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that only claims a size: IHDR + empty IDAT + IEND, a few dozen bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def _decode(data: bytes, max_pixels: int = LIMIT) -> np.ndarray:
    arr = decode_image(data, S, max_pixels)
    assert arr.shape == (3, S, S)
    assert arr.dtype == np.uint8
    assert arr.flags["C_CONTIGUOUS"]
    return arr


def _channel_means(arr: np.ndarray) -> list[float]:
    return arr.reshape(3, -1).mean(axis=1).tolist()


# ------------------------------------------------------------------------------------------
# decode_image: valid but unusual images
# ------------------------------------------------------------------------------------------


def test_cmyk_jpeg_is_converted_to_rgb() -> None:
    data = _encode(Image.new("CMYK", (24, 24), (0, 255, 255, 0)), "JPEG", quality=95)
    r, g, b = _channel_means(_decode(data))
    assert r > 240 and g < 15 and b < 15  # no cyan/magenta/yellow ink = red


def test_16bit_grayscale_png_keeps_its_brightness() -> None:
    values = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    data = _encode(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    arr = _decode(data)
    assert arr[:, 0, 0].max() < 20 and arr[:, -1, -1].min() > 235  # black ... white
    assert np.array_equal(arr[0], arr[1]) and np.array_equal(arr[1], arr[2])


@pytest.mark.parametrize("value16", [0x4000, 0x8000, 0x0400])
def test_16bit_uniform_png_is_not_stretched_to_white(value16: int) -> None:
    """A flat (or dark) 16-bit image has the same brightness as its 8-bit twin."""
    flat = np.full((20, 20), value16, dtype=np.uint16)
    arr = _decode(_encode(Image.fromarray(flat), "PNG"))
    assert abs(float(arr.mean()) - value16 / 257) <= 1.5


def test_palette_png_with_transparency_becomes_white_where_transparent() -> None:
    img = Image.new("P", (32, 32), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * (254 * 3))  # 0 red (transparent), 1 blue
    img.paste(1, (0, 0, 16, 32))  # left half opaque blue
    data = _encode(img, "PNG", transparency=0)
    arr = _decode(data)
    left, right = arr[:, :, : S // 2 - 1], arr[:, :, S // 2 + 1 :]
    assert _channel_means(left) == pytest.approx([0, 0, 255], abs=2)
    assert _channel_means(right) == pytest.approx([255, 255, 255], abs=2)


def test_rgba_png_transparent_area_becomes_white() -> None:
    img = Image.new("RGBA", (32, 32), (0, 0, 0, 0))  # transparent black
    img.paste((255, 0, 0, 255), (0, 0, 16, 32))  # left half opaque red
    arr = _decode(_encode(img, "PNG"))
    assert _channel_means(arr[:, :, : S // 2 - 1]) == pytest.approx([255, 0, 0], abs=2)
    assert _channel_means(arr[:, :, S // 2 + 1 :]) == pytest.approx([255, 255, 255], abs=2)


def test_grayscale_l_is_replicated_to_three_channels() -> None:
    arr = _decode(_encode(Image.new("L", (20, 20), 77), "PNG"))
    assert _channel_means(arr) == pytest.approx([77, 77, 77], abs=1)


def test_one_bit_image() -> None:
    img = Image.new("1", (32, 32), 0)
    img.paste(1, (0, 0, 16, 32))  # left half white
    arr = _decode(_encode(img, "PNG"))
    assert _channel_means(arr[:, :, : S // 2 - 1]) == pytest.approx([255, 255, 255], abs=2)
    assert _channel_means(arr[:, :, S // 2 + 1 :]) == pytest.approx([0, 0, 0], abs=2)


def test_exif_orientation_is_applied() -> None:
    """Stored 40x20 with a red left half; orientation 6 (rotate 90 CW) puts red on top."""
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    arr = _decode(_encode(img, "JPEG", quality=95, exif=exif.tobytes()))
    top, bottom = arr[:, : S // 2 - 2, :], arr[:, S // 2 + 2 :, :]
    assert _channel_means(top) == pytest.approx([255, 0, 0], abs=12)
    assert _channel_means(bottom) == pytest.approx([0, 0, 255], abs=12)
    # without the tag the red half would be on the left: the columns would differ, not the rows
    assert np.abs(arr[:, :, 0].astype(int) - arr[:, :, -1].astype(int)).max() < 30


def test_large_image_within_the_limit() -> None:
    data = _encode(Image.new("RGB", (4000, 3000), (10, 200, 30)), "JPEG", quality=90)
    arr = _decode(data, max_pixels=4000 * 3000)
    assert _channel_means(arr) == pytest.approx([10, 200, 30], abs=4)


def test_animated_gif_uses_the_first_frame() -> None:
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(io.BytesIO(buf.getvalue())).n_frames == 3
    assert _channel_means(_decode(buf.getvalue())) == pytest.approx([255, 0, 0], abs=3)


# ------------------------------------------------------------------------------------------
# decode_image: limits and broken inputs
# ------------------------------------------------------------------------------------------


def test_over_max_pixels_names_the_limit_key() -> None:
    data = _encode(Image.new("L", (100, 100)), "PNG")
    with pytest.raises(ItemError, match=r"infer\.max_pixels") as info:
        decode_image(data, S, max_pixels=5000)
    assert "100x100" in str(info.value) and "5000" in str(info.value)
    assert decode_image(data, S, max_pixels=10_000).shape == (3, S, S)  # exactly at the limit


@pytest.mark.parametrize("side", [10_000, 20_000, 65_000])
def test_decompression_bomb_header_is_refused_naming_the_limit_key(side: int) -> None:
    """Only the header is read: a few dozen bytes claiming 100M..4G pixels."""
    data = _png_header(side, side)
    assert len(data) < 100
    with pytest.raises(ItemError, match=r"infer\.max_pixels") as info:
        decode_image(data, S, LIMIT)
    assert "\n" not in str(info.value)


def test_configured_limit_governs_not_pillows_global(monkeypatch: pytest.MonkeyPatch) -> None:
    """A user who raises infer.max_pixels gets images up to that size decoded."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow's default stands below ours
    data = _encode(Image.new("RGB", (40, 40), (0, 128, 0)), "PNG")  # 1600 px: 1x..2x Pillow's
    arr = _decode(data, max_pixels=10_000)
    assert _channel_means(arr) == pytest.approx([0, 128, 0], abs=1)
    with pytest.raises(ItemError, match=r"infer\.max_pixels"):
        decode_image(data, S, max_pixels=1500)


def test_zero_byte_file() -> None:
    with pytest.raises(ItemError, match=r"^zero-byte file$"):
        decode_image(b"", S, LIMIT)


def test_truncated_png() -> None:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = _encode(noise, "PNG")
    with pytest.raises(ItemError, match="corrupt image") as info:
        decode_image(data[: len(data) // 2], S, LIMIT)
    assert "\n" not in str(info.value)


def test_text_bytes_are_not_an_image() -> None:
    with pytest.raises(ItemError, match=r"^not a decodable image$"):
        decode_image(b"id,label\n1,cat\nthis is a csv, not a png\n", S, LIMIT)


# ------------------------------------------------------------------------------------------
# FetchDecode
# ------------------------------------------------------------------------------------------


def _good_png(color: tuple[int, int, int]) -> bytes:
    return _encode(Image.new("RGB", (24, 24), color), "PNG")


def _pixels(table: pa.Table) -> np.ndarray:
    return np.concatenate([c.to_numpy() for c in table.column(PIXELS).chunks])


def test_fetch_decode_mixed_inline_batch() -> None:
    batch = pa.table(
        {
            "item_id": ["good-1", "bad", "empty", "dup", "good-2"],
            "uri": ["d.parquet#good-1", "d.parquet#bad", "d.parquet#empty", "d.parquet#good-1", ""],
            "label_hint": [1, 2, 3, 4, 5],  # an unrelated column passes through untouched
            "bytes": [
                _good_png((200, 0, 0)),
                b"not an image",
                b"",
                _good_png((1, 2, 3)),
                _good_png((0, 0, 90)),
            ],
            "duplicate": [False, False, False, True, False],
        }
    )
    out = FetchDecode(StorageOptions(), S, LIMIT)(batch)

    assert out.column_names == ["item_id", "uri", "label_hint", PIXELS, ERROR, ERROR_STAGE]
    assert out.num_rows == 5
    assert out.column("item_id").to_pylist() == batch.column("item_id").to_pylist()
    assert out.column("label_hint").to_pylist() == [1, 2, 3, 4, 5]
    errors = out.column(ERROR).to_pylist()
    stages = out.column(ERROR_STAGE).to_pylist()
    assert errors[0] is None and errors[4] is None
    assert stages[0] is None and stages[4] is None
    assert (errors[1], stages[1]) == ("not a decodable image", "decode")
    assert (errors[2], stages[2]) == ("zero-byte file", "decode")
    assert stages[3] == "input" and "duplicate" in errors[3]
    assert all("\n" not in e for e in errors if e)

    pixels = _pixels(out)
    assert pixels.shape == (5, 3, S, S) and pixels.dtype == np.uint8
    assert pixels[0].any() and pixels[4].any()
    assert _channel_means(pixels[0]) == pytest.approx([200, 0, 0], abs=1)
    assert _channel_means(pixels[4]) == pytest.approx([0, 0, 90], abs=1)
    assert not pixels[1].any() and not pixels[2].any() and not pixels[3].any()


def test_fetch_decode_reads_uris(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.png").write_bytes(_good_png((0, 255, 0)))
    (tmp_path / "b.jpg").write_bytes(_encode(Image.new("RGB", (30, 30), (0, 0, 255)), "JPEG"))
    (tmp_path / "junk.png").write_text("not really a png\n")
    missing = str(tmp_path / "gone" / "missing.png")
    batch = pa.table(
        {
            "item_id": ["a", "b", "missing", "junk", "dup"],
            "uri": [
                str(tmp_path / "sub" / "a.png"),
                (tmp_path / "b.jpg").as_uri(),  # file:// works too
                missing,
                str(tmp_path / "junk.png"),
                str(tmp_path / "sub" / "a.png"),
            ],
            "duplicate": [False, False, False, False, True],
        }
    )
    out = FetchDecode(StorageOptions(), S, LIMIT)(batch)

    assert out.column_names == ["item_id", "uri", PIXELS, ERROR, ERROR_STAGE]
    errors = out.column(ERROR).to_pylist()
    stages = out.column(ERROR_STAGE).to_pylist()
    assert errors[:2] == [None, None] and stages[:2] == [None, None]
    assert stages[2] == "read" and errors[2] == f"object not found: {missing}"
    assert (errors[3], stages[3]) == ("not a decodable image", "decode")
    assert stages[4] == "input"
    assert all("\n" not in e for e in errors if e)
    pixels = _pixels(out)
    assert _channel_means(pixels[0]) == pytest.approx([0, 255, 0], abs=1)
    assert _channel_means(pixels[1]) == pytest.approx([0, 0, 255], abs=3)
    assert not pixels[2].any()


def test_fetch_decode_without_optional_columns_and_empty_batch() -> None:
    batch = pa.table({"item_id": ["x"], "uri": ["inline"], "bytes": [_good_png((9, 9, 9))]})
    out = FetchDecode(StorageOptions(), S, LIMIT)(batch)
    assert out.column_names == ["item_id", "uri", PIXELS, ERROR, ERROR_STAGE]
    assert out.column(ERROR).to_pylist() == [None]

    empty = batch.slice(0, 0)
    out = FetchDecode(StorageOptions(), S, LIMIT)(empty)
    assert out.num_rows == 0
    assert out.column_names == ["item_id", "uri", PIXELS, ERROR, ERROR_STAGE]


def test_fetch_decode_unexpected_exception_becomes_one_line_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def boom(data: bytes, size: int, max_pixels: int, crop: float | None) -> np.ndarray:
        raise RuntimeError("line one\nline two")

    monkeypatch.setattr("raylabel.inputs.decode.decode_image", boom)
    batch = pa.table({"item_id": ["x"], "uri": ["u"], "bytes": [b"\x89PNG"]})
    out = FetchDecode(StorageOptions(), S, LIMIT)(batch)
    assert out.column(ERROR).to_pylist() == ["RuntimeError: line one line two"]
    assert out.column(ERROR_STAGE).to_pylist() == ["decode"]


def test_fetch_decode_does_not_start_ray() -> None:
    import ray

    was_running = ray.is_initialized()  # a Ray-backed test earlier in the session may own one
    batch = pa.table({"item_id": ["x"], "uri": ["u"], "bytes": [_good_png((1, 1, 1))]})
    FetchDecode(StorageOptions(), S, LIMIT)(batch)
    assert ray.is_initialized() == was_running


def test_pretrained_framing_resizes_the_shorter_side_then_crops_the_centre() -> None:
    """Issue #17 item 1: a torchvision start's images are framed as its weights' transforms
    frame them (ImageNet: shorter side to 256, centre 224), so the wide borders of a 2:1
    image are cut off instead of squashed in."""
    from raylabel.models.image import crop_fraction

    wide = np.zeros((100, 200, 3), np.uint8)
    wide[:, :50] = (0, 0, 255)  # blue borders left and right
    wide[:, 150:] = (0, 0, 255)
    wide[:, 50:150] = (255, 0, 0)  # a red square in the middle
    buf = io.BytesIO()
    Image.fromarray(wide).save(buf, format="PNG")
    fraction = crop_fraction("resnet18", "torchvision")
    assert fraction == 224 / 256
    framed = decode_image(buf.getvalue(), 32, 10**8, fraction)
    squashed = decode_image(buf.getvalue(), 32, 10**8)
    assert framed.shape == squashed.shape == (3, 32, 32)
    assert framed[2].max() == 0 and framed[0].min() == 255  # only the red centre is left
    assert squashed[2].max() == 255  # the whole image, borders squashed in
    assert crop_fraction("small_cnn", None) is None and crop_fraction("resnet18", "/w.st") is None
