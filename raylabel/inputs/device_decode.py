"""Decoding JPEGs on the inference device (infer.decode_on_device): one batched
`torchvision.io.decode_jpeg` call (nvjpeg on a GPU) and the resize there, so a GPU actor's
pixels go from bytes to the model without a trip through host memory or a CPU core.

Why a gate in front of it: the CPU decoder (decode.py) is the reference. Only JPEGs whose
header says the device decodes them exactly as Pillow would (8-bit, grey or YCbCr, Huffman
coded, no EXIF rotation, complete, within infer.max_pixels) go to the device; every other
item, and any JPEG the device refuses, takes the CPU decoder, so error rows, their messages
and stages are the CPU path's own. torch is imported where it is used: decode tasks import
this package and must not pay for it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from raylabel.inputs.decode import FetchDecode, framing

if TYPE_CHECKING:
    import torch

# 0xFFC0 baseline, 0xFFC1 extended, 0xFFC2 progressive (Huffman): what nvjpeg and libjpeg
# both decode; arithmetic-coded, lossless and hierarchical frames take the CPU decoder
DEVICE_FRAMES = (0xC0, 0xC1, 0xC2)
SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# decoded pixels per batched call (about 200 MB of RGB): a batch of camera photos is split
# into several calls instead of asking the device for gigabytes at once
PIXEL_BUDGET = 1 << 26


@dataclass(frozen=True)
class JpegHeader:
    """What a JPEG's markers say before any decoding: enough to route it."""

    width: int
    height: int
    components: int
    precision: int
    frame: int  # the SOF marker's second byte
    orientation: int  # EXIF orientation; 1 = as stored, 0 = unreadable EXIF
    adobe_rgb: bool  # an Adobe APP14 marker saying the 3 components are RGB, not YCbCr


def jpeg_header(data: bytes) -> JpegHeader | None:
    """The frame header of a JPEG (and its EXIF orientation), walking the markers only;
    None for anything that is not a well-formed JPEG up to its frame header."""
    if data[:2] != b"\xff\xd8":
        return None
    pos, orientation, adobe_rgb = 2, 1, False
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or scan data before any frame header
            return None
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        segment = data[pos + 4 : pos + 2 + length]
        if length < 2 or len(segment) != length - 2:
            return None
        if marker == 0xE1 and segment.startswith(b"Exif\x00\x00"):
            orientation = exif_orientation(segment[6:])
        elif marker == 0xEE and segment.startswith(b"Adobe") and len(segment) >= 12:
            adobe_rgb = segment[11] == 0
        elif marker in SOF_MARKERS:
            if len(segment) < 6:
                return None
            height = int.from_bytes(segment[1:3], "big")
            width = int.from_bytes(segment[3:5], "big")
            return JpegHeader(width, height, segment[5], segment[0], marker, orientation, adobe_rgb)
        pos += 2 + length
    return None


def exif_orientation(tiff: bytes) -> int:
    """The orientation tag (0x0112) of IFD0 of an EXIF block; 1 when absent, 0 when the
    block cannot be read (the CPU decoder then decides)."""
    if tiff[:2] not in (b"II", b"MM") or len(tiff) < 8:
        return 0
    order: Literal["little", "big"] = "little" if tiff[:2] == b"II" else "big"
    ifd = int.from_bytes(tiff[4:8], order)
    if ifd + 2 > len(tiff):
        return 0
    for k in range(int.from_bytes(tiff[ifd : ifd + 2], order)):
        entry = ifd + 2 + 12 * k
        if entry + 12 > len(tiff):
            return 0
        if int.from_bytes(tiff[entry : entry + 2], order) == 0x0112:
            return int.from_bytes(tiff[entry + 8 : entry + 10], order)
    return 1


def device_decodable(data: bytes, max_pixels: int) -> JpegHeader | None:
    """The header when the device decoder may take this item, else None (the CPU decoder
    takes it, and refuses it with its own message when it must: too large, corrupt)."""
    head = jpeg_header(data)
    if head is None or head.frame not in DEVICE_FRAMES or head.precision != 8:
        return None
    if head.components not in (1, 3) or head.adobe_rgb or head.orientation != 1:
        return None
    if not 0 < head.width * head.height <= max_pixels:
        return None
    # a truncated JPEG decodes on the device to a partly grey image; Pillow refuses it
    return head if data[-64:].rstrip(b"\x00\r\n ")[-2:] == b"\xff\xd9" else None


def decode_jpegs(payloads: list[bytes], device: str) -> list[torch.Tensor | None]:
    """uint8 (3, H, W) RGB tensors on `device`, one batched `decode_jpeg` call; when the
    batch fails (nvjpeg returns nothing then), each item alone, None for those that fail."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    if not payloads:
        return []
    if device.startswith("cuda"):
        # nvjpeg writes on its own stream into memory allocated on ours without waiting for
        # it: kernels still queued here could read blocks it is handed (pytorch/vision#9606)
        torch.cuda.current_stream(torch.device(device)).synchronize()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29: see torchcodec
        warnings.simplefilter("ignore", UserWarning)  # frombuffer: bytes are read-only
        tensors = [torch.frombuffer(p, dtype=torch.uint8) for p in payloads]
        try:
            return list(decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device))
        except RuntimeError:
            pass
        out: list[torch.Tensor | None] = []
        for t in tensors:
            try:
                out.append(decode_jpeg([t], mode=ImageReadMode.RGB, device=device)[0])
            except RuntimeError:
                out.append(None)
        return out


def resize_crop(images: torch.Tensor, size: int, crop_fraction: float | None) -> torch.Tensor:
    """(k, 3, H, W) uint8 images of one size -> (k, 3, size, size) uint8, framed by the CPU
    decoder's rule (decode.framing) with antialiased bilinear resampling, Pillow's filter."""
    import torch
    from torch.nn import functional

    h, w = images.shape[-2:]
    nw, nh, left, top = framing(w, h, size, crop_fraction)
    x = images.float()
    if (nh, nw) != (h, w):
        x = functional.interpolate(
            x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True
        )
    x = x[..., top : top + size, left : left + size]
    return x.round_().clamp_(0, 255).to(torch.uint8)


class DeviceDecode:
    """The device counterpart of a FetchDecode (same items read the same way, same framing):
    a batch -> (its rows with error and error_stage, uint8 NCHW pixels on the device)."""

    def __init__(self, fetch: FetchDecode, device: str) -> None:
        self.fetch = fetch
        self.device = device

    def __call__(self, batch: pa.Table) -> tuple[pa.Table, torch.Tensor]:
        """Rows as FetchDecode returns them but without the pixels column: the pixels come
        apart, still on the device (zeros on error rows)."""
        import torch

        payloads, errors, stages = self.fetch.read(batch)
        size = self.fetch.image_size
        pixels = torch.zeros((batch.num_rows, 3, size, size), dtype=torch.uint8, device=self.device)
        rows, heads = [], []
        for i, data in enumerate(payloads):
            head = device_decodable(data, self.fetch.max_pixels) if errors[i] is None else None
            if head is not None:
                rows.append(i)
                heads.append(head)
        done = self._decode_on_device(payloads, rows, heads, pixels)
        cpu = [i for i in range(batch.num_rows) if errors[i] is None and i not in done]
        cpu_pixels = np.zeros((len(cpu), 3, size, size), dtype=np.uint8)
        for j, i in enumerate(cpu):
            arr, errors[i] = self.fetch.decode_one(payloads[i])
            if arr is None:
                stages[i] = "decode"
            else:
                cpu_pixels[j] = arr
        if cpu:
            index = torch.tensor(cpu, dtype=torch.long, device=self.device)
            pixels[index] = torch.from_numpy(cpu_pixels).to(self.device)
        return self.fetch.rows_out(batch, errors, stages), pixels

    def _decode_on_device(
        self, payloads: list[bytes], rows: list[int], heads: list[JpegHeader], out: Any
    ) -> set[int]:
        """Decode `rows` in calls of at most PIXEL_BUDGET pixels, resize images of one shape
        together into `out`; returns the rows done (the rest take the CPU decoder)."""
        import torch

        done: set[int] = set()
        for chunk in _chunks(rows, [h.width * h.height for h in heads]):
            images = decode_jpegs([payloads[i] for i in chunk], self.device)
            shapes: dict[tuple[int, ...], list[int]] = {}
            for k, img in enumerate(images):
                if img is not None and img.ndim == 3 and img.shape[0] == 3:
                    shapes.setdefault(tuple(img.shape), []).append(k)
            for ks in shapes.values():
                stacked = torch.stack([images[k] for k in ks])  # type: ignore[misc]
                framed = resize_crop(stacked, self.fetch.image_size, self.fetch.crop_fraction)
                index = torch.tensor([chunk[k] for k in ks], dtype=torch.long, device=self.device)
                out[index] = framed
                done.update(chunk[k] for k in ks)
        return done


def _chunks(rows: list[int], pixels: list[int]) -> list[list[int]]:
    """`rows` in order, cut so each run's pixels stay within PIXEL_BUDGET (one image over it
    is a run of its own)."""
    out: list[list[int]] = []
    current: list[int] = []
    total = 0
    for row, px in zip(rows, pixels, strict=True):
        if current and total + px > PIXEL_BUDGET:
            out.append(current)
            current, total = [], 0
        current.append(row)
        total += px
    if current:
        out.append(current)
    return out
