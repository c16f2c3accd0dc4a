"""model.arch=rnn: the subword tokenizer learned from the seed is saved with the model and
applied identically in training and labeling; a 2-worker Ray Train run through the text
demo with MiniLM made unavailable; the model directory contract (tokenizer required)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from raylabel.config import load_config
from raylabel.errors import ConfigError, ModelLoadError
from raylabel.inputs.tokenize import TokenizeText
from raylabel.io.schema import ERROR_SCHEMA, TEXT_LABEL_SCHEMA
from raylabel.io.storage import StorageOptions
from raylabel.models import subword
from raylabel.models.predictor import Predictor
from raylabel.models.rnn import RnnClassifier, bucketed_logits

TEXTS = [
    "Part AB-1234-X failed torque check at station 7",
    "refund the double charge on invoice 88123 please",
    "ERR 0x1f3 disk /dev/sda1 full, retrying in 30s",
    "pt c/o SOB x2d, hx COPD, sats 91% RA",
] * 10


@pytest.mark.parametrize("kind", ["bpe", "wordpiece"])
def test_tokenizer_saved_reloaded_and_applied_identically(kind: str, tmp_path: Path) -> None:
    enc = subword.train_subword(iter(TEXTS), kind, vocab_size=300, min_frequency=1)
    subword.save(enc, tmp_path)
    assert json.loads((tmp_path / "tokenizer.json").read_text())["model"]["type"].lower() == (
        "bpe" if kind == "bpe" else "wordpiece"
    )
    probe = ["part AB-1234-X failed", "naïve café ☃ ☃ 漢字", "\u200b", "invoice " * 100]
    batch = pa.table(
        {
            "item_id": [f"i{i}" for i in range(len(probe))],
            "uri": [f"mem://{i}" for i in range(len(probe))],
            "text": probe,
        }
    )
    # training tokenizes with the JSON shipped to the workers, labeling with the saved file
    at_train = TokenizeText("", StorageOptions(), 16, arch="rnn", tokenizer_json=enc.to_json())
    at_label = TokenizeText(str(tmp_path), StorageOptions(), 16, arch="rnn")
    a, b = at_train(batch), at_label(batch)
    assert a.column("input_ids").to_pylist() == b.column("input_ids").to_pylist()
    assert a.column("truncated").to_pylist() == [False, False, False, True]
    assert a.column("truncated").to_pylist() == b.column("truncated").to_pylist()
    ids = a.column("input_ids").to_pylist()
    eos = enc.tokenizer.token_to_id(subword.EOS)
    assert all(seq and seq[-1] == eos for seq in ids)  # truncation keeps the closing token
    assert len(ids[3]) == 16
    assert enc.unk_token_id in ids[1]  # characters never seen in the seed map to [UNK]
    assert ids[2] == [enc.unk_token_id, eos]  # nothing but an invisible char: still usable


def test_bucketed_logits_match_one_by_one_and_keep_order() -> None:
    torch.manual_seed(0)
    model = RnnClassifier(50, 3, cell="lstm", embed_dim=8, hidden=8, pooling="mean").eval()
    rng = np.random.default_rng(0)
    ids = [rng.integers(3, 50, size=n).astype(np.int32) for n in (9, 2, 30, 5, 17, 1, 12)]
    together = bucketed_logits(model, ids, pad_id=0, bucket_size=3, device="cpu")
    alone = np.concatenate([bucketed_logits(model, [s], 0, 0, "cpu") for s in ids])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    # transformers-style hidden states, for the review queue's embeddings
    x = torch.from_numpy(np.stack([ids[0][:2], ids[1]]).astype(np.int64))
    out = model(input_ids=x, attention_mask=torch.ones_like(x), output_hidden_states=True)
    assert out.hidden_states[-1].shape == (2, 2, 16) and out.logits.shape == (2, 3)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.rnn.cell=rnn", "model.rnn.cell"),
        ("model.rnn.pooling=sum", "model.rnn.pooling"),
        ("model.tokenizer.kind=unigram", "model.tokenizer.kind"),
        ("model.tokenizer.vocab_size=3", "model.tokenizer.vocab_size"),
        ("model.tokenizer.train_on_drop_sample=-1", "model.tokenizer.train_on_drop_sample"),
    ],
)
def test_bad_rnn_keys_name_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config([], ["modality=text", "model.arch=rnn", override])


def test_rnn_needs_no_pretrained_model() -> None:
    from raylabel.demo.run import TEXT_RNN_DEMO_OVERRIDES

    cfg = load_config([], ["modality=text", "model.arch=rnn", "model.rnn.cell=lstm"])
    assert cfg.model.pretrained is None and cfg.model.rnn.cell == "lstm"
    shipped = load_config([Path(__file__).resolve().parents[2] / "conf" / "text-rnn.yaml"], [])
    assert shipped.model.arch == "rnn" and shipped.model.pretrained is None
    assert load_config([], TEXT_RNN_DEMO_OVERRIDES).model.arch == "rnn"


@pytest.mark.slow
def test_rnn_text_demo_two_workers_without_minilm(
    ray_cluster: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from raylabel.demo import run as demo_run
    from raylabel.demo.texts import TextDemoSpec

    def no_minilm() -> Path:
        raise AssertionError("model.arch=rnn must not need the MiniLM extra")

    monkeypatch.setattr(demo_run, "minilm_dir", no_minilm)
    spec = TextDemoSpec(n_seed_per_class=16, n_drop=60, seed=5, n_bad_items=3, long_fraction=0.05)
    demo_run.run_demo(
        tmp_path,
        "text",
        [
            "model.arch=rnn",
            "model.max_length=48",
            "model.rnn.hidden=16",
            "model.rnn.embed_dim=16",
            "model.tokenizer.vocab_size=500",
            "model.tokenizer.train_on_drop_sample=20",
            "train.epochs=2",
            "train.min_steps=0",
            "review.size=10",
        ],
        spec=spec,
    )
    model_dir = next((tmp_path / "output" / "models").glob("m-*"))
    card = json.loads((model_dir / "model_card.json").read_text())
    assert card["arch"] == "rnn" and card["training"]["num_workers"] == 2
    tok = card["preprocessing"]["tokenizer"]
    assert tok["trained_on_seed_items"] == 16 * len(spec.classes)
    assert 17 <= tok["trained_on_drop_items"] <= 20  # a sampled bad item is skipped
    assert card["preprocessing"]["rnn"]["hidden"] == 16
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "calibration.parquet",
        "folds",
        "model.safetensors",
        "model_card.json",
        "tokenizer.json",
    ]
    for member in card["ensemble"]["members"]:  # each fold model carries its tokenizer too
        assert (model_dir / member / "tokenizer.json").is_file()

    run = next((tmp_path / "output" / "runs" / "demo-text-drop").glob("r-*"))
    labels, errors = pq.read_table(run / "labels"), pq.read_table(run / "errors")
    assert labels.schema.remove_metadata() == TEXT_LABEL_SCHEMA
    assert errors.schema.remove_metadata() == ERROR_SCHEMA
    assert labels.num_rows == 60 and errors.num_rows == 3
    assert sum(labels.column("truncated").to_pylist()) >= 1  # the long email threads
    assert set(labels.column("label").to_pylist()) <= set(card["classes"])
    assert (run / "_SUCCESS").is_file()

    # the label actors' loader: the same model loads; without its tokenizer it is refused
    assert Predictor.from_dir(model_dir).card.arch == "rnn"
    copy = tmp_path / "no-tokenizer"
    shutil.copytree(model_dir, copy)
    (copy / "tokenizer.json").unlink()
    with pytest.raises(ModelLoadError, match=r"no tokenizer \(tokenizer\.json\)"):
        Predictor.from_dir(copy)
    # and `raylabel label` refuses it up front: exit 2, one line, before any Ray work
    from raylabel.cli import main

    (model_dir / "tokenizer.json").unlink()
    capsys.readouterr()
    code = main(
        [
            "label",
            *demo_run.TEXT_RNN_DEMO_OVERRIDES,
            f"drop.path={tmp_path / 'data' / 'drop'}",
            f"output.root={tmp_path / 'output'}",
            "run.force=true",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no tokenizer (tokenizer.json)" in err and len(err.splitlines()) == 1
