"""How one synthetic text item is written: sentences, layout, noise and the hard modes.

Why a module of its own: the writer (:mod:`raylabel.demo.texts`) decides *which* items a
drop holds (class, hard mode, long thread); this module decides what one item *reads
like*. Easy items speak plainly with the topic's own vocabulary; hard items mix two topics,
stay vague or are a chat fragment, and are noisier, so the classifier's confidences spread
and calibration, thresholds and review have something real to do.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from raylabel.demo.text_slots import Slots, pick
from raylabel.demo.text_vocabulary import (
    AGENT_REPLIES,
    AGENTS,
    CLOSERS,
    DEFAULT_TOPICS,
    DISCLAIMER,
    EMOJI_NEG,
    EMOJI_NEU,
    EMOJI_POS,
    FILLER,
    FILLER_PRAISE,
    MONTHS,
    NAMES,
    NEG_SENTENCES,
    OPENERS,
    SHORT,
    TEMPLATES,
    VAGUE,
)

# Ways an item is made hard; a hard item gets exactly one of them.
HARD_MODES: tuple[str, ...] = ("mixed", "vague", "short")
# Share of each hard mode in the written demo (same order as HARD_MODES).
HARD_MODE_P: tuple[float, ...] = (0.45, 0.30, 0.25)

# Word count range of the very long items (truncation fodder).
_LONG_WORDS = (3200, 6000)


# --------------------------------------------------------------------------- noise


def _typos(text: str, r: random.Random, rate: float) -> str:
    """Swap, drop or double a character inside about `rate` of the longer words."""
    words = text.split(" ")
    for i, w in enumerate(words):
        if r.random() >= rate or len(w) < 4 or not w[:-1].isalpha():
            continue
        j = r.randrange(1, len(w) - 2)  # never the first or the last character
        kind = r.random()
        if kind < 0.6:
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
        elif kind < 0.8:
            words[i] = w[:j] + w[j + 1 :]
        else:
            words[i] = w[:j] + w[j] + w[j:]
    return " ".join(words)


def _punct(sentence: str, r: random.Random) -> str:
    """Sloppy end punctuation, now and then."""
    u = r.random()
    if u < 0.82 or not sentence:
        return sentence
    core = sentence.rstrip(".!?")
    if u < 0.88:
        return core
    if u < 0.93:
        return core + ("??" if sentence.endswith("?") else "!!")
    if u < 0.97:
        return core + "..."
    return core + (" ???" if sentence.endswith("?") else " !!!")


def _emoji(topic: str) -> tuple[str, ...]:
    return EMOJI_POS if topic == "praise" else EMOJI_NEG + EMOJI_NEU


# --------------------------------------------------------------------------- rendering


def _fill(templates: Sequence[str], k: int, r: random.Random, slots: Slots) -> list[str]:
    """`k` distinct templates of a pool, filled (k is capped at the pool size)."""
    k = min(k, len(templates))
    return [templates[i].format_map(slots) for i in r.sample(range(len(templates)), k)]


def _insert_anywhere(sentences: list[str], extra: list[str], r: random.Random) -> None:
    for s in extra:
        sentences.insert(r.randrange(len(sentences) + 1), s)


def _compose(sentences: list[str], topic: str, r: random.Random, slots: Slots, noisy: bool) -> str:
    """Ticket or review text around the body sentences: layout, greeting, sign-off, noise."""
    body = [_punct(s, r) for s in sentences]
    for i in range(len(body)):
        if r.random() < 0.07:
            body[i] = f"{body[i]} {pick(r, _emoji(topic))}"
    if len(body) > 1 and r.random() < 0.04:  # one shouted sentence
        i = r.randrange(len(body))
        body[i] = body[i].upper()

    if len(body) >= 4 and r.random() < 0.35:
        cut = r.randrange(1, len(body))
        text = " ".join(body[:cut]) + "\n\n" + " ".join(body[cut:])
    else:
        text = " ".join(body)

    rate = r.uniform(0.04, 0.09) if noisy else 0.0
    if not noisy and r.random() < 0.3:
        rate = r.uniform(0.01, 0.03)
    if rate:
        text = _typos(text, r, rate)
    if r.random() < (0.25 if noisy else 0.12):
        text = text.lower()
    if r.random() < 0.05:
        text = text.replace(" ", "  ", 1 + r.randrange(3))

    if r.random() < 0.15:  # review style: a star rating, no greeting
        stars = r.randrange(4, 6) if topic == "praise" else r.randrange(1, 4)
        return f"Rating: {stars}/5\n{text}"
    if r.random() < 0.5:
        opener = pick(r, OPENERS).format_map(slots)
        text = opener + ("\n\n" if r.random() < 0.6 else " ") + text
    if r.random() < 0.5:
        closer = pick(r, CLOSERS)
        if closer.endswith(",") or r.random() < 0.3:
            name = slots["name"]
            closer = f"{closer}\n{name.split(' ')[0] if r.random() < 0.5 else name}"
        text = text + ("\n\n" if "\n" in text or r.random() < 0.5 else " ") + closer
    return text


def render_item(topic: str, r: random.Random, mode: str, other_topic: str | None = None) -> str:
    """Lets the drop writer pick each item's mode itself and seed each item on its own.

    One item of `topic` rendered in `mode` ("easy" or one of `HARD_MODES`; ``mixed``
    needs `other_topic`), drawing only from `r`.
    """
    slots = Slots(r, topic)
    filler = FILLER_PRAISE if topic == "praise" else FILLER
    if mode == "easy":
        n_topic = r.choice((1, 2, 2, 3, 3, 3, 4, 4, 5))
        sentences = _fill(TEMPLATES[topic], n_topic, r, slots)
        extra = _fill(filler, r.randrange(min(2, 6 - n_topic) + 1), r, slots)
        if topic != "praise" and r.random() < 0.2 and len(sentences) + len(extra) < 6:
            extra += _fill(NEG_SENTENCES, 1, r, slots)
        _insert_anywhere(sentences, extra, r)
        return _compose(sentences, topic, r, slots, noisy=False)

    if mode == "mixed":
        if other_topic is None or other_topic == topic:
            raise ValueError(f"mixed items need another topic than {topic!r}, got {other_topic!r}")
        # The main topic has more sentences, but some of them are vague while the other
        # topic speaks plainly: the truth is what most of the message is about.
        n_main = r.randrange(2, 5)
        n_other = min(n_main - 1, 2)  # at most six sentences in all
        n_vague = sum(r.random() < 0.6 for _ in range(n_main - 1))
        sentences = _fill(TEMPLATES[topic], n_main - n_vague, r, slots)
        sentences += _fill(VAGUE[topic], n_vague, r, slots)
        sentences += _fill(TEMPLATES[other_topic], n_other, r, slots)
        r.shuffle(sentences)
        return _compose(sentences, topic, r, slots, noisy=True)

    if mode == "vague":
        sentences = _fill(VAGUE[topic], r.randrange(1, 4), r, slots)
        _insert_anywhere(sentences, _fill(filler, r.randrange(3), r, slots), r)
        return _compose(sentences, topic, r, slots, noisy=True)

    if mode == "short":
        text = pick(r, SHORT[topic])
        u = r.random()
        if u < 0.2:
            text = f"{text} {pick(r, _emoji(topic))}"
        elif u < 0.35:
            text = text.upper()
        elif u < 0.5:
            text = f"{pick(r, ('hi', 'hey', 'hello', 'yo'))} {text}"
        return text

    raise ValueError(f"unknown mode {mode!r}; choose from {('easy', *HARD_MODES)}")


def _check_topic(topic: str, field: str) -> None:
    if topic not in TEMPLATES:
        raise ValueError(f"unknown {field} {topic!r}; choose from {sorted(TEMPLATES)}")


def _py_random(rng: np.random.Generator) -> random.Random:
    """A fast stdlib generator seeded from `rng` (text assembly makes many tiny draws)."""
    return random.Random(int(rng.integers(2**63)))


def render_text(
    topic: str, rng: np.random.Generator, hard: bool, other_topic: str | None = None
) -> str:
    """Lets tests draw single items in the demo's styles from a numpy generator, no files.

    Text of one item about `topic`.

    Easy items: 1-5 sentences of the topic's own vocabulary plus up to two topic-free
    context sentences (order number, product, "please reply soon"), at most six in all,
    with optional greeting, paragraph break, sign-off and signature, or a "Rating: n/5"
    review header; occasional typos, lowercase writing, sloppy punctuation and emoji.

    Hard items get one of:

    - ``mixed``: sentences of `topic` and of another topic interleaved, `topic` always
      with strictly more sentences (so it stays the truth), though some of them are
      vague while the other topic's are plain;
    - ``vague``: the complaint without the topic's keywords ("Still waiting on it.");
    - ``short``: a chat fragment of a few words ("wont connect", "label?").

    Hard texts are noisier (more typos, more often lowercase). With `other_topic` a hard
    item is always ``mixed`` with that topic; without it the mode is drawn, and a mixed
    item takes a random other known topic. `other_topic` is only valid with ``hard``.
    The same generator state gives the same text.
    """
    _check_topic(topic, "topic")
    r = _py_random(rng)
    if other_topic is not None:
        _check_topic(other_topic, "other_topic")
        if not hard:
            raise ValueError("other_topic is only used for hard items (hard=True)")
        if other_topic == topic:
            raise ValueError(f"other_topic must differ from topic, both are {topic!r}")
        return render_item(topic, r, "mixed", other_topic)
    if not hard:
        return render_item(topic, r, "easy")
    mode = r.choices(HARD_MODES, weights=HARD_MODE_P)[0]
    other = pick(r, [t for t in DEFAULT_TOPICS if t != topic]) if mode == "mixed" else None
    return render_item(topic, r, mode, other)


def render_long_thread(topic: str, r: random.Random) -> str:
    """Truncation fodder: an email thread of several thousand words about `topic`.

    The first message is an ordinary easy item; below it come quoted earlier messages of
    the same customer about the same topic, agent replies and mail disclaimers. The topic
    is clear from the start, so truncating to the first tokens keeps the label.
    """
    target = r.randrange(*_LONG_WORDS)
    parts = [render_item(topic, r, "easy")]
    n_words = len(parts[0].split())
    while n_words < target:
        u = r.random()
        if u < 0.6:
            quoted, who = render_item(topic, r, "easy"), pick(r, NAMES)
        elif u < 0.85:
            quoted, who = pick(r, AGENT_REPLIES), f"{pick(r, AGENTS)} (Support)"
        else:
            quoted, who = DISCLAIMER, pick(r, NAMES)
        day = f"{pick(r, MONTHS)} {r.randrange(1, 29)}"
        block = f"On {day}, {who} wrote:\n" + "\n".join("> " + line for line in quoted.split("\n"))
        parts.append(block)
        n_words += len(block.split())
    return "\n\n".join(parts)


def render_tagged(topics: Sequence[str], r: random.Random, vague_topic: str | None = None) -> str:
    """Lets the multi-label demo write one ticket about several topics at once (or none).

    Each topic in `topics` contributes one or two of its own sentences; `vague_topic`
    (one of `topics`) speaks only in its vague wording instead, which is what makes the
    item hard. Up to two topic-free context sentences are mixed in (fewer with more
    topics, so a ticket stays within 128 tokens); a ticket with no topic is context only
    ("My order number is ..."). Draws only from `r`.
    """
    for topic in topics:
        _check_topic(topic, "topic")
    if vague_topic is not None and vague_topic not in topics:
        raise ValueError(f"vague_topic {vague_topic!r} is not among the topics {list(topics)}")
    main = "technical" if "technical" in topics else (topics[0] if topics else "account")
    slots = Slots(r, main)
    sentences: list[str] = []
    for topic in topics:
        if topic == vague_topic:
            sentences += _fill(VAGUE[topic], r.randrange(1, 3), r, slots)
        else:
            sentences += _fill(TEMPLATES[topic], r.randrange(1, 3), r, slots)
    r.shuffle(sentences)
    n_filler = r.randrange(1, 4) if not topics else r.randrange(max(1, 4 - len(topics)))
    _insert_anywhere(sentences, _fill(FILLER, n_filler, r, slots), r)
    return _compose(sentences, main, r, slots, noisy=vague_topic is not None)
