"""Review tasks carry what a reviewer opens (issue #19 item 1): images as resized data:
URIs, text as its text; `review.media=uri` keeps the uri; an unreadable item keeps it too."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from raylabel.io.storage import StorageOptions
from raylabel.models.card import ModelCard
from raylabel.review.media import with_media

OPTS = StorageOptions()


def _card(modality: str) -> ModelCard:
    return ModelCard("m-1", "small_cnn" if modality == "image" else "rnn", modality, ["a", "b"], {})


def _rows(paths: list[Path]) -> pa.Table:
    return pa.table({"item_id": [p.name for p in paths], "uri": [str(p) for p in paths]})


def test_images_become_resized_data_uris(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((900, 600, 3), np.uint8)).save(big)
    gone = tmp_path / "gone.png"
    table, col = with_media(_rows([big, gone]), _card("image"), None, OPTS, "inline", 300, 1 << 20)
    assert col == "media"
    shown = table.column("media").to_pylist()
    assert shown[0].startswith("data:image/jpeg;base64,")
    img = Image.open(io.BytesIO(base64.b64decode(shown[0].split(",", 1)[1])))
    assert max(img.size) == 300 and img.size == (200, 300)
    assert shown[1] == str(gone)  # unreadable: the uri stays
    same, none = with_media(_rows([big]), _card("image"), None, OPTS, "uri", 300, 1 << 20)
    assert none is None and same.column_names == ["item_id", "uri"]


def test_text_tasks_carry_the_text_whatever_the_mode(tmp_path: Path) -> None:
    doc = tmp_path / "ticket.txt"
    doc.write_text("My invoice is wrong — please refund.")
    for mode in ("inline", "uri"):
        table, col = with_media(_rows([doc]), _card("text"), None, OPTS, mode, 300, 1 << 20)
        assert col == "media"
        assert table.column("media").to_pylist() == ["My invoice is wrong — please refund."]
