"""Text end to end with a real (tiny) transformers model built from a config and a
vocabulary written here — no downloads: 2 Ray Train workers fine-tune it, the label
actors load it back (also from the loopback S3 endpoint) and label a drop with bad items."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from s3server import S3Server, make_bucket, upload_tree

from raylabel.config import Config, load_config
from raylabel.errors import ModelLoadError
from raylabel.io import storage
from raylabel.io.schema import ERROR_SCHEMA, TEXT_LABEL_SCHEMA
from raylabel.label import label
from raylabel.models.predictor import Predictor
from raylabel.train import TrainResult, train

pytestmark = pytest.mark.slow
TOPICS = {
    "billing": ["invoice", "charge", "refund", "payment", "card", "price"],
    "shipping": ["parcel", "delivery", "courier", "tracking", "box", "late"],
}
FILLER = ["the", "my", "is", "was", "please", "help", "a", "with", "order", "today"]


def tiny_bert(root: Path) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = sorted({w for ws in TOPICS.values() for w in ws} | set(FILLER))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    root.mkdir(parents=True)
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(root / "vocab.txt")).save_pretrained(str(root))
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(str(root), safe_serialization=True)
    return root


def sentence(rng: random.Random, topic: str, n: int = 8) -> str:
    words = [
        rng.choice(TOPICS[topic]) if rng.random() < 0.5 else rng.choice(FILLER) for _ in range(n)
    ]
    return " ".join(words)


def write_data(root: Path) -> tuple[Path, Path]:
    rng = random.Random(0)
    seed = root / "seed.jsonl"
    rows = [
        {"item_id": f"s{i}", "text": sentence(rng, t), "label": t}
        for t in TOPICS
        for i in range(30)
    ]
    seed.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    drop = root / "drop"
    drop.mkdir()
    for i in range(20):
        (drop / f"item-{i:03d}.txt").write_text(sentence(rng, rng.choice(list(TOPICS))))
    (drop / "item-long.txt").write_text(sentence(rng, "billing", n=400))
    (drop / "item-empty.txt").write_text("")
    (drop / "item-binary.txt").write_bytes(b"\x00\x01\x02garbage\x00")
    (drop / "item-latin1.txt").write_bytes("café crème brûlée".encode("latin-1"))
    return seed, drop


def overrides(base: Path, seed: str, drop: str, out: str, *extra: str) -> list[str]:
    return [
        "modality=text",
        "model.arch=hf",
        f"model.pretrained={base}",
        "model.max_length=32",
        f"seed.path={seed}",
        f"drop.path={drop}",
        f"output.root={out}",
        "train.epochs=3",
        "train.min_steps=0",
        "train.num_workers=2",
        "train.batch_size=8",
        "train.lr=0.003",
        "qc.min_support=5",
        "review.size=8",
        *extra,
    ]


@dataclass
class TextRun:
    cfg: Config
    trained: TrainResult
    root: Path


@pytest.fixture(scope="module")
def text_run(ray_cluster: None, tmp_path_factory: pytest.TempPathFactory) -> TextRun:
    root = tmp_path_factory.mktemp("text")
    base = tiny_bert(root / "tiny-bert")
    seed, drop = write_data(root)
    cfg = load_config([], overrides(base, str(seed), str(drop), str(root / "out")))
    return TextRun(cfg, train(cfg), root)


def test_text_train_and_label_local(text_run: TextRun) -> None:
    cfg, trained = text_run.cfg, text_run.trained
    model_dir = Path(trained.model_uri)
    assert (model_dir / "model.safetensors").is_file()
    assert (model_dir / "tokenizer.json").is_file() or (model_dir / "vocab.txt").is_file()
    hf_config = json.loads((model_dir / "config.json").read_text())
    assert hf_config["id2label"] == {"0": "billing", "1": "shipping"}
    card = json.loads((model_dir / "model_card.json").read_text())
    assert card["classes"] == ["billing", "shipping"] and card["modality"] == "text"
    assert card["training"]["num_workers"] == 2

    result = label(cfg)
    run = Path(result.run_uri)
    labels = pq.read_table(run / "labels")
    errors = pq.read_table(run / "errors")
    assert labels.schema.remove_metadata() == TEXT_LABEL_SCHEMA
    assert errors.schema.remove_metadata() == ERROR_SCHEMA
    assert labels.num_rows + errors.num_rows == 24
    assert sorted(errors.column("item_id").to_pylist()) == [
        "item-binary.txt",
        "item-empty.txt",
        "item-latin1.txt",
    ]
    reasons = dict(
        zip(errors.column("item_id").to_pylist(), errors.column("error").to_pylist(), strict=True)
    )
    assert "NUL" in reasons["item-binary.txt"] and "UTF-8" in reasons["item-latin1.txt"]
    assert "empty" in reasons["item-empty.txt"]
    truncated = dict(
        zip(
            labels.column("item_id").to_pylist(),
            labels.column("truncated").to_pylist(),
            strict=True,
        )
    )
    assert truncated["item-long.txt"] is True
    assert sum(truncated.values()) == 1
    assert (run / "review" / "labelstudio.json").is_file()
    tasks = json.loads((run / "review" / "labelstudio.json").read_text())
    assert tasks and "text" in tasks[0]["data"]


def test_text_model_missing_tokenizer_is_refused(text_run: TextRun, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(text_run.trained.model_uri, copy)
    assert Predictor.from_dir(copy).card.modality == "text"
    for f in ("vocab.txt", "tokenizer.json"):
        (copy / f).unlink(missing_ok=True)
    with pytest.raises(ModelLoadError, match="no tokenizer"):
        Predictor.from_dir(copy)


def test_text_model_through_s3(ray_cluster: None, s3_server: S3Server, tmp_path: Path) -> None:
    url = s3_server.endpoint_url
    make_bucket(url, "rl-text")
    base = tiny_bert(tmp_path / "tiny-bert")
    seed, drop = write_data(tmp_path)
    upload_tree(base, url, "s3://rl-text/base")
    upload_tree(drop, url, "s3://rl-text/drops/d1")
    cfg = load_config(
        [],
        overrides(
            Path("/unused"),
            str(seed),
            "s3://rl-text/drops/d1",
            "s3://rl-text/out",
            "model.pretrained=s3://rl-text/base",
            f"storage.endpoint_url={url}",
            "train.epochs=1",
            "train.min_steps=0",
        ),
    )
    trained = train(cfg)
    opts = storage.StorageOptions(endpoint_url=url)
    assert storage.exists(storage.join(trained.model_uri, "tokenizer.json"), opts)
    result = label(cfg)
    summary = storage.read_json(storage.join(result.run_uri, "summary.json"), opts)
    assert summary["counts"]["input"] == 24 and summary["counts"]["errors"] == 3
