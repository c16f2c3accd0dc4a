"""CPU preprocessing: fetch bytes (when not inline), decode and resize images.

Runs inside Ray Data tasks. Every item either yields a fixed-size uint8 image or an
error string for that item; a bad item never fails the batch, so nothing is lost.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image, ImageOps

from raylabel.inputs.checks import INPUT_ERROR_COLUMN, refused_mask
from raylabel.io.failures import StorageUnavailable, store_failure
from raylabel.io.storage import StorageOptions, resolve

PIXELS = "pixels"
ERROR = "error"
ERROR_STAGE = "error_stage"


class ItemError(Exception):
    """One item cannot be used; the message becomes its error row."""


def decode_image(
    data: bytes, size: int, max_pixels: int, crop_fraction: float | None = None
) -> np.ndarray:
    """Bytes -> uint8 array (3, size, size), whatever the mode, orientation or bit depth.
    Resized whole, or (`crop_fraction`, a pretrained start's framing) shorter side to
    size / crop_fraction, then the centre size x size."""
    if not data:
        raise ItemError("zero-byte file")
    try:
        with warnings.catch_warnings():
            # infer.max_pixels, checked below from the header alone, is the limit: Pillow's
            # own warning threshold must not override it (its hard limit still applies).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise ItemError(
                    f"image is {width}x{height} pixels, over the limit of {max_pixels} "
                    "(infer.max_pixels)"
                )
            if img.format == "JPEG":
                img.draft("RGB", (size, size))
            img.load()
            img = ImageOps.exif_transpose(img)
            rgb = _to_rgb(img)
            rgb = _resize_crop(rgb, size, crop_fraction)
    except ItemError:
        raise
    except Image.DecompressionBombError as exc:
        raise ItemError(
            f"decompression bomb: {_one_line(exc)} (infer.max_pixels={max_pixels})"
        ) from None
    except Image.UnidentifiedImageError:
        raise ItemError("not a decodable image") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ItemError(f"corrupt image: {_one_line(exc)}") from None
    arr = np.asarray(rgb, dtype=np.uint8)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def framing(
    width: int, height: int, size: int, crop_fraction: float | None
) -> tuple[int, int, int, int]:
    """(resized width, resized height, crop left, crop top) of an image framed to size x size:
    one rule for the CPU and the device decoder, so both frame every image alike."""
    if crop_fraction is None:
        return size, size, 0, 0
    short = max(size, round(size / crop_fraction))
    scale = short / min(width, height)
    nw, nh = max(size, round(width * scale)), max(size, round(height * scale))
    return nw, nh, (nw - size) // 2, (nh - size) // 2


def _resize_crop(img: Image.Image, size: int, crop_fraction: float | None) -> Image.Image:
    if crop_fraction is None:
        return img.resize((size, size), Image.BILINEAR)
    nw, nh, left, top = framing(*img.size, size, crop_fraction)
    img = img.resize((nw, nh), Image.BILINEAR)
    return img.crop((left, top, left + size, top + size))


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        # 16 bits: a fixed full scale (as 255 is for 8 bits), never a per-image stretch
        hi = 65535.0 if img.mode.startswith("I;16") else float(arr.max(initial=0.0))
        scaled = (arr / hi * 255.0) if hi > 0 else arr
        img = Image.fromarray(scaled.clip(0, 255).astype(np.uint8), mode="L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img.convert("RGBA"), mask=img.convert("RGBA").getchannel("A"))
        return background
    return img.convert("RGB")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")
    return text[:300] if text else type(exc).__name__


class FetchDecode:
    """Callable for `map_batches`: fills `pixels` and `error` for each item of a batch.

    Items arrive either with inline `bytes` or with a `uri` to fetch; the filesystem is
    resolved once per task, not per item.
    """

    def __init__(
        self,
        storage: StorageOptions,
        image_size: int,
        max_pixels: int,
        max_bytes: int | None = None,
        crop_fraction: float | None = None,
    ) -> None:
        self.storage = storage
        self.image_size = image_size
        self.crop_fraction = crop_fraction
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes

    def __call__(self, batch: pa.Table) -> pa.Table:
        """The `map_batches` contract: the same rows back with pixels, error and error_stage filled;
        a bad item becomes an error row and never fails the task, but a storage outage raises so
        the run fails instead of recording every item as an error."""
        payloads, errors, stages = self.read(batch)
        pixels = np.zeros((batch.num_rows, 3, self.image_size, self.image_size), dtype=np.uint8)
        for i, data in enumerate(payloads):
            if errors[i] is None:
                arr, errors[i] = self.decode_one(data)
                if arr is None:
                    stages[i] = "decode"
                else:
                    pixels[i] = arr
        from ray.data.extensions import ArrowTensorArray

        return self.rows_out(batch, errors, stages, ArrowTensorArray.from_numpy(pixels))

    def read(self, batch: pa.Table) -> tuple[list[bytes], list[str | None], list[str | None]]:
        """Each row's payload, or its error and stage ("input": refused by planning or a
        duplicate, "read": not fetched, "decode": null); split from the decoding so the device
        decoder reads items exactly as this one does. A storage outage raises."""
        n = batch.num_rows
        uris = batch.column("uri").to_pylist()
        inline = batch.column("bytes").to_pylist() if "bytes" in batch.column_names else None
        dup = (
            batch.column("duplicate").to_pylist()
            if "duplicate" in batch.column_names
            else [False] * n
        )
        refused = refused_mask(batch)  # planning refused these rows (e.g. outside the drop root)
        sizes = listed_sizes(batch)
        payloads: list[bytes] = [b""] * n
        errors: list[str | None] = [None] * n
        stages: list[str | None] = [None] * n
        fs_cache: dict[str, Any] = {}
        for i in range(n):
            if dup[i]:
                errors[i] = "duplicate item_id in the input (labeled once, at its first occurrence)"
                stages[i] = "input"
                continue
            if refused[i] is not None:
                errors[i], stages[i] = refused[i], "input"
                continue
            try:
                check_size(sizes[i], self.max_bytes)
                data = inline[i] if inline is not None else self._fetch(uris[i], fs_cache)
                check_size(len(data) if data is not None else None, self.max_bytes)
            except ItemError as exc:
                errors[i], stages[i] = str(exc), "read"
                continue
            except StorageUnavailable:
                raise
            except Exception as exc:  # any per-item failure must become an error row
                errors[i], stages[i] = f"{type(exc).__name__}: {_one_line(exc)}", "read"
                continue
            if data is None:
                errors[i], stages[i] = "payload is null", "decode"
            else:
                payloads[i] = data
        return payloads, errors, stages

    def decode_one(self, data: bytes) -> tuple[np.ndarray | None, str | None]:
        """(pixels, None) or (None, the item's one-line error): what any failure of the CPU
        decoder becomes, for this path and for the device decoder's fallback alike."""
        try:
            return decode_image(data, self.image_size, self.max_pixels, self.crop_fraction), None
        except ItemError as exc:
            return None, str(exc)
        except Exception as exc:  # any per-item failure must become an error row
            return None, f"{type(exc).__name__}: {_one_line(exc)}"

    def rows_out(
        self,
        batch: pa.Table,
        errors: list[str | None],
        stages: list[str | None],
        pixels: pa.Array | None = None,
    ) -> pa.Table:
        """The batch's rows without the payload and planning columns, plus pixels (when given),
        error and error_stage."""
        dropped = ("bytes", "duplicate", "size", INPUT_ERROR_COLUMN)
        out = batch.drop_columns([c for c in dropped if c in batch.column_names])
        if pixels is not None:
            out = out.append_column(PIXELS, pixels)
        out = out.append_column(ERROR, pa.array(errors, pa.string()))
        return out.append_column(ERROR_STAGE, pa.array(stages, pa.string()))

    def _fetch(self, uri: str, cache: dict[str, Any]) -> bytes:
        return fetch_bytes(uri, self.storage, cache, self.max_bytes)


def listed_sizes(batch: pa.Table) -> list[int | None]:
    """Item sizes the listing already knows (folder drops), so an oversized item is refused
    without a single byte read; None where unknown."""
    if "size" not in batch.column_names:
        return [None] * batch.num_rows
    return batch.column("size").to_pylist()


def check_size(size: int | None, max_bytes: int | None) -> None:
    """Refuse an item over `infer.max_item_bytes` (a 1 GiB file must not be read whole)."""
    if max_bytes is not None and size is not None and size > max_bytes:
        raise ItemError(f"item is {size} bytes, over infer.max_item_bytes={max_bytes}")


def fetch_bytes(
    uri: str, storage: StorageOptions, cache: dict[str, Any], max_bytes: int | None = None
) -> bytes:
    """Read one object, at most `max_bytes` + 1 of it (an oversized item is refused without
    being held in memory); the filesystem is resolved once per scheme and batch (`cache`)."""
    scheme = uri.split("://", 1)[0] if "://" in uri else "file"
    if scheme not in cache:
        cache[scheme] = resolve(uri, storage)[0]
    fs = cache[scheme]
    try:
        with fs.open_input_stream(_fs_path(uri)) as f:
            data = f.read() if max_bytes is None else f.read(max_bytes + 1)
    except FileNotFoundError:
        raise ItemError(f"object not found: {uri}") from None
    except OSError as exc:
        failure = store_failure(uri, exc)
        if failure is not None:  # an outage must fail the run, not become error rows
            raise failure from None
        raise ItemError(f"unreadable object: {_one_line(exc)}") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise ItemError(f"item is over infer.max_item_bytes={max_bytes} bytes")
    return data


def _fs_path(uri: str) -> str:
    """URI -> path in its pyarrow filesystem ("s3://b/k" -> "b/k", "file:///a" -> "/a")."""
    for prefix in ("s3://", "file://"):
        if uri.startswith(prefix):
            return uri[len(prefix) :]
    return uri


class TextItemError(Exception):
    """One text item cannot be used; the message becomes its error row."""


def decode_text(data: bytes | str | None) -> str:
    """Bytes -> text; empty, binary and non-UTF-8 items are refused with a clear reason."""
    if data is None:
        raise TextItemError("payload is null")
    if isinstance(data, str):
        text = data
    else:
        if b"\x00" in data:
            raise TextItemError("binary content (NUL bytes), not text")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TextItemError(f"not valid UTF-8 (byte {exc.start})") from None
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise TextItemError("empty text")
    return text
