"""`model.arch=rnn`: embedding + bidirectional GRU/LSTM + pooling + linear head.

Everything is learned from the user's data (the subword tokenizer too, see subword.py),
so nothing is downloaded. It rides the common Ray Train loop (RnnTextTask plays the part
TextTask plays for transformers) and the common label pipeline: the model takes the same
`input_ids` / `attention_mask` a transformers classifier takes and returns logits.

CPU speed: padded positions are skipped with packed sequences, and at inference each
actor batch is sorted by length and cut into buckets padded to their own longest item
(`bucketed_logits`), then put back in the original order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

RNN_DIR = "rnn"  # checkpoint sub-directory: weights + tokenizer.json
POOLINGS = ("mean", "max", "last")
CELLS = ("gru", "lstm")


class RnnClassifier(nn.Module):
    """A small bidirectional recurrent text classifier (a few hundred k parameters)."""

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        cell: str = "gru",
        embed_dim: int = 128,
        hidden: int = 128,
        layers: int = 1,
        pooling: str = "max",
        dropout: float = 0.2,
        packed: bool = True,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        if cell not in CELLS or pooling not in POOLINGS:
            raise ValueError(f"rnn: unknown cell {cell!r} or pooling {pooling!r}")
        self.pooling = pooling
        self.packed = packed
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        rnn_cls = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn_cls(
            embed_dim,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden, num_classes)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool = False,
    ) -> Any:
        """Logits; with `output_hidden_states` a transformers-style result whose last
        hidden state is the RNN output per token (the review queue's embeddings use it)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask = attention_mask.bool()
        lengths = mask.sum(1).clamp(min=1)
        x = self.dropout(self.embed(input_ids))
        if self.packed:
            packed = nn.utils.rnn.pack_padded_sequence(
                x, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            out_p, h = self.rnn(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(
                out_p, batch_first=True, total_length=input_ids.shape[1]
            )
        else:
            out, h = self.rnn(x)
        logits = self.head(self.dropout(self._pool(out, h, mask, lengths)))
        if output_hidden_states:
            from types import SimpleNamespace

            return SimpleNamespace(logits=logits, hidden_states=(out,))
        return logits

    def _pool(
        self, out: torch.Tensor, h: Any, mask: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        m = mask.unsqueeze(-1)
        if self.pooling == "mean":
            return (out * m).sum(1) / lengths.unsqueeze(-1).to(out.dtype)
        if self.pooling == "max":
            return out.masked_fill(~m, float("-inf")).max(1).values
        half = out.shape[-1] // 2
        if self.packed:  # the final states stop at each item's own last token
            h_n = h[0] if isinstance(h, tuple) else h
            return torch.cat([h_n[-2], h_n[-1]], dim=1)
        idx = (lengths - 1).view(-1, 1, 1).expand(-1, 1, half)
        fwd = out[:, :, :half].gather(1, idx).squeeze(1)
        return torch.cat([fwd, out[:, 0, half:]], dim=1)


def card_preprocessing(cfg: Any) -> dict[str, Any]:
    """The card's preprocessing entry: what a label actor needs to tokenize the same way and
    rebuild the same module (the card, not the label-time config, is the authority)."""
    import dataclasses

    t = cfg.model.tokenizer
    return {
        "max_length": cfg.model.max_length,
        "tokenizer": {
            "file": "tokenizer.json",
            "kind": t.kind,
            "vocab_size": t.vocab_size,
            "min_frequency": t.min_frequency,
            "lowercase": t.lowercase,
            "train_on_drop_sample": t.train_on_drop_sample,
            "specials": ["[PAD]", "[UNK]", "[EOS]"],
        },
        "padding": "dynamic, per length bucket (model.rnn.bucket_size)",
        "truncation": "longest items cut to max_length tokens, [EOS] kept (rows say truncated)",
        "rnn": dataclasses.asdict(cfg.model.rnn),
    }


def build_rnn(
    settings: dict[str, Any], vocab_size: int, num_classes: int, pad_id: int, dropout: float = 0.0
) -> RnnClassifier:
    """The module a card (or the train config) describes; dropout only matters in training."""
    return RnnClassifier(
        vocab_size=vocab_size,
        num_classes=num_classes,
        cell=str(settings["cell"]),
        embed_dim=int(settings["embed_dim"]),
        hidden=int(settings["hidden"]),
        layers=int(settings["layers"]),
        pooling=str(settings["pooling"]),
        dropout=dropout,
        packed=bool(settings.get("packed", True)),
        pad_id=pad_id,
    )


class RnnTextTask:
    """Train-loop adapter: the tokenizer comes as JSON in the loop config (trained once on
    the driver), batches are padded to their own longest item."""

    def __init__(self, config: dict[str, Any], rank: int) -> None:
        from raylabel.models import subword

        del rank
        self.tokenizer = subword.from_json(config["tokenizer_json"])
        self.pad_id = self.tokenizer.pad_token_id
        self.model = build_rnn(
            config["rnn"],
            self.tokenizer.vocab_size,
            int(config["num_classes"]),
            self.pad_id,
            float(config["dropout"]),
        )

    def batches(self, shard: Any, bs: int, shuffle_seed: int | None) -> Any:
        """Training-loop contract: the batches every text architecture trains on (`text_batches`),
        padded with this tokenizer's pad id."""
        from raylabel.models.batches import text_batches

        return text_batches(shard, bs, shuffle_seed, self.pad_id)

    def inputs_from_numpy(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """Model inputs of an unlabeled numpy batch, for fold models predicting their rows."""
        from raylabel.models.batches import text_inputs

        return text_inputs(batch, self.pad_id)

    def forward(self, model: nn.Module, inputs: dict[str, torch.Tensor], train: bool) -> Any:
        """Logits; `train` is unused because text has no training-time transform (dropout follows
        the module's train/eval mode)."""
        del train
        return model(**inputs)

    def save(self, model: nn.Module, out: Path) -> None:
        """The checkpoint layout the rnn family publishes from (`rnn/`: safetensors weights and the
        learned tokenizer.json), so the model never travels without its vocabulary."""
        from safetensors.torch import save_file

        from raylabel.models import subword
        from raylabel.models.card import WEIGHTS_FILE

        d = out / RNN_DIR
        d.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(d / WEIGHTS_FILE), metadata={"format": "pt"})
        subword.save(self.tokenizer, d)

    def restore(self, model: nn.Module, ckpt: Path) -> None:
        """Load `save`'s weights strictly when Ray Train restarts the worker group from a
        checkpoint."""
        from safetensors.torch import load_file

        from raylabel.models.card import WEIGHTS_FILE

        model.load_state_dict(load_file(str(ckpt / RNN_DIR / WEIGHTS_FILE)), strict=True)


def load_rnn_model(model_dir: Path, card: Any) -> nn.Module:
    """Rebuild from the card's settings and the saved tokenizer; weights strictly."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from raylabel.errors import ModelLoadError
    from raylabel.models import subword
    from raylabel.models.card import checked_weights

    weights = checked_weights(model_dir, card)
    tok = subword.load(model_dir)
    settings = card.preprocessing.get("rnn")
    if not isinstance(settings, dict):
        raise ModelLoadError(f"{model_dir}: model card has no preprocessing.rnn settings")
    model = build_rnn(settings, tok.vocab_size, len(card.classes), tok.pad_token_id)
    try:
        state = load_file(str(weights))
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError) as exc:
        lines = str(exc).strip().splitlines()
        detail = lines[1].strip() if len(lines) > 1 else (lines[0] if lines else "")
        raise ModelLoadError(
            f"{weights}: weights do not match the model card and tokenizer "
            f"(arch=rnn, {len(card.classes)} classes, vocab {tok.vocab_size}): {detail}"
        ) from None
    model.eval()
    return model


@torch.inference_mode()
def bucketed_logits(
    model: nn.Module, ids: list[np.ndarray], pad_id: int, bucket_size: int, device: str
) -> np.ndarray:
    """Sort by length, run buckets each padded to its own longest, restore the order."""
    from raylabel.models.batches import pad

    n = len(ids)
    if n == 0:
        return np.zeros((0, 0), np.float32)
    size = bucket_size if bucket_size > 0 else n
    order = np.argsort([len(s) for s in ids], kind="stable")
    parts: list[np.ndarray] = []
    for start in range(0, n, size):
        chunk = [ids[i] for i in order[start : start + size]]
        x, mask = pad(chunk, pad_id)
        out = model(
            input_ids=torch.from_numpy(x).to(device),
            attention_mask=torch.from_numpy(mask).to(device),
        )
        parts.append(out.float().cpu().numpy())
    logits = np.concatenate(parts)
    restored = np.empty_like(logits)
    restored[order] = logits
    return restored


def require_tokenizer(model_dir_uri: str, opts: Any) -> None:
    """Refuse an rnn model directory without its tokenizer before any work starts (label
    actors would otherwise fail one by one, with the reason buried in a Ray error)."""
    from raylabel.errors import ModelLoadError
    from raylabel.io import storage
    from raylabel.models.subword import TOKENIZER_FILE

    if not storage.exists(storage.join(model_dir_uri, TOKENIZER_FILE), opts):
        raise ModelLoadError(
            f"{model_dir_uri}: no tokenizer ({TOKENIZER_FILE}); an rnn text model directory "
            "must carry the subword tokenizer it was trained with"
        )
