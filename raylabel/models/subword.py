"""A subword tokenizer learned from the user's own texts (no pretrained download).

Domain vocabularies (part numbers, log lines, clinical shorthand) are shredded by a
general-purpose tokenizer; a BPE or WordPiece vocabulary trained on the seed set (plus,
optionally, a bounded sample of the drop) keeps their frequent pieces whole. It is trained
once on the driver from a streamed iterator, shipped to the training workers as its JSON
string, and saved beside the weights as `tokenizer.json` (plain JSON, no pickle).

Every encoding ends with `[EOS]`, so truncation keeps the closing token exactly as the
transformers path keeps `[SEP]`, and an item whose characters are all unknown still has
a non-empty sequence.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PAD, UNK, EOS = "[PAD]", "[UNK]", "[EOS]"
SPECIALS = (PAD, UNK, EOS)  # ids 0, 1, 2 in that order
TOKENIZER_FILE = "tokenizer.json"
_ENCODERS: dict[str, SubwordEncoder] = {}


class SubwordEncoder:
    """Callable like a transformers tokenizer (`tok(texts)["input_ids"]`, `pad_token_id`),
    so the text preprocessing step applies it exactly as it applies a pretrained one."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.pad_token_id = int(tokenizer.token_to_id(PAD))
        self.unk_token_id = int(tokenizer.token_to_id(UNK))
        self.vocab_size = int(tokenizer.get_vocab_size(with_added_tokens=True))

    def __call__(
        self,
        texts: list[str],
        truncation: bool = False,
        max_length: int | None = None,
        add_special_tokens: bool = True,
    ) -> dict[str, list[list[int]]]:
        """The transformers tokenizer call the text preprocessing makes: ids ending in [EOS];
        with truncation, at most `max_length` of them, the closing [EOS] kept."""
        enc = self.tokenizer.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        ids = [e.ids for e in enc]
        if truncation and max_length:
            ids = [s if len(s) <= max_length else [*s[: max_length - 1], s[-1]] for s in ids]
        return {"input_ids": ids}

    def to_json(self) -> str:
        """The tokenizer as a JSON string: how it is shipped to training workers and saved beside
        the weights, never as a pickle."""
        return str(self.tokenizer.to_str())


def train_subword(
    texts: Iterable[str],
    kind: str,
    vocab_size: int,
    min_frequency: int,
    lowercase: bool = True,
) -> SubwordEncoder:
    """Learn a BPE or WordPiece vocabulary from a stream of texts (read once, not stored)."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token=UNK))
        trainer: Any = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIALS),
            show_progress=False,
        )
        tok.decoder = decoders.BPEDecoder()
    elif kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=UNK))
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIALS),
            show_progress=False,
        )
        tok.decoder = decoders.WordPiece()
    else:
        raise ValueError(f"model.tokenizer.kind: {kind!r} is not one of bpe, wordpiece")
    steps: list[Any] = [normalizers.NFKC()]
    if lowercase:
        steps.append(normalizers.Lowercase())
    tok.normalizer = normalizers.Sequence(steps)
    # words and punctuation runs apart; digits stay with their word (part numbers, codes)
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(iter(texts), trainer=trainer)
    eos = tok.token_to_id(EOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", pair=f"$A {EOS} $B:1 {EOS}:1", special_tokens=[(EOS, eos)]
    )
    if [tok.token_to_id(s) for s in SPECIALS] != [0, 1, 2]:
        raise RuntimeError("subword tokenizer: special tokens did not get ids 0, 1, 2")
    return SubwordEncoder(tok)


def from_json(text: str) -> SubwordEncoder:
    """One encoder per process and tokenizer (workers reuse it across batches)."""
    key = hashlib.sha256(text.encode()).hexdigest()
    if key not in _ENCODERS:
        from tokenizers import Tokenizer

        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        _ENCODERS[key] = SubwordEncoder(Tokenizer.from_str(text))
    return _ENCODERS[key]


def save(encoder: SubwordEncoder, model_dir: Path) -> Path:
    """Write `tokenizer.json` into a model directory, where `load` (and so every label actor) looks
    for it."""
    path = model_dir / TOKENIZER_FILE
    path.write_text(encoder.to_json(), encoding="utf-8")
    return path


def load(model_dir: str | Path) -> SubwordEncoder:
    """The tokenizer saved with an rnn model; a directory without one is refused."""
    from raylabel.errors import ModelLoadError

    path = Path(model_dir) / TOKENIZER_FILE
    if not path.is_file():
        raise ModelLoadError(
            f"{model_dir}: no tokenizer ({TOKENIZER_FILE}); an rnn text model directory must "
            "carry the subword tokenizer it was trained with"
        )
    try:
        return from_json(path.read_text(encoding="utf-8"))
    except Exception as exc:  # a corrupt file must be one clear line, not a Rust panic dump
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{path}: not a valid tokenizer ({first})") from None
