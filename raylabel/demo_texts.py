"""Synthetic text data drop (support tickets / product reviews) for the demo and the tests.

Why: the text demo and its tests need a workload that behaves like a real ticket queue
without shipping a data set. A sentence encoder with a linear head should learn the topics
quickly on the easy items (each topic has its own vocabulary), while a controlled share of
hard items (two topics mixed, vague wording, very short messages) spreads the classifier's
confidences so calibration, per-class thresholds and the review sample have something real
to do. Products, order numbers, dates, names and the usual greetings are shared by every
topic, so they carry no signal. A few very long items exercise truncation, and planted bad
files (empty, binary, not UTF-8, whitespace only) exercise the error table.

Everything is a pure function of :class:`TextDemoSpec`: the same spec writes byte-identical
files.
"""

from __future__ import annotations

import csv
import json
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_TOPICS: tuple[str, ...] = (
    "billing",
    "shipping",
    "technical",
    "account",
    "returns",
    "praise",
)

# Ways an item is made hard; a hard item gets exactly one of them.
_HARD_MODES: tuple[str, ...] = ("mixed", "vague", "short")
# Share of each hard mode in the written demo (same order as _HARD_MODES).
_HARD_MODE_P: tuple[float, ...] = (0.45, 0.30, 0.25)

# Streams of the per-item random generators, so seed and drop are independent draws.
_STREAM_DROP_PLAN = 1
_STREAM_SEED_ITEMS = 2
_STREAM_DROP_ITEMS = 3
_STREAM_BAD_ITEMS = 4
_STREAM_SEED_PLAN = 5

# Kinds of unusable files planted in the drop, in the order they are used.
_BAD_KINDS: tuple[str, ...] = ("empty", "binary", "latin1", "whitespace")

# Word count range of the very long items (truncation fodder).
_LONG_WORDS = (3200, 6000)


# --------------------------------------------------------------------------- vocabulary
#
# Per topic: `_TEMPLATES` (clear sentences), `_VAGUE` (the same complaint without the
# topic's keywords) and `_SHORT` (chat-style fragments). `{slot}` fields are filled from
# `_SLOT_MAKERS`; a slot keeps its value within one item (one product per message).

_TEMPLATES: dict[str, tuple[str, ...]] = {
    "billing": (
        "I was charged twice for order {order}.",
        "My credit card was billed {amount} but the invoice says {amount2}.",
        "Why did my subscription renew at {amount} when I cancelled it on {date}?",
        "There is a charge of {amount} on my card statement that I don't recognise.",
        "Can you send me a proper invoice with VAT for order {order}?",
        "The payment failed at checkout but the money still left my bank account.",
        "I upgraded to the {plan} plan and got billed for the full year instead of monthly.",
        "Please refund the duplicate payment of {amount}.",
        "My bank shows a pending transaction from you for {amount}.",
        "The promo code was not applied, so I paid the full price.",
        "I need to update the billing address printed on my invoices.",
        "Your pricing page said {amount} per month but I was charged more.",
        "The receipt for order {order} lists the wrong tax amount.",
        "I was billed after my free trial ended even though I cancelled in time.",
        "Which card is on file for my subscription? I want to switch it to a new Visa.",
        "Is there a way to pay by bank transfer instead of credit card?",
        "I got a late payment fee of {amount}, but I paid on time on {date}.",
        "The charge was in dollars and my bank added a currency conversion fee.",
        "Invoice {invoice} doesn't match the amount I actually paid.",
        "Please cancel the auto-renewal and stop charging my card.",
        "I'm {neg} about being overcharged again this month.",
        "Can I get a copy of all my invoices for my accountant?",
        "The annual fee went up by {amount} without any notice.",
    ),
    "shipping": (
        "My package for order {order} still hasn't arrived.",
        "The tracking number hasn't updated in {days} days.",
        "{carrier} says the parcel was delivered, but nothing is at my door.",
        "Delivery was promised for {date} and it's now late.",
        "Can I change the shipping address to {city} before it ships?",
        "The courier left the box outside in the rain and it was soaked.",
        "Tracking shows it stuck at the {city} depot since {date}.",
        "Is express shipping available to {city}?",
        "Why did I have to pay customs duties on delivery?",
        "Only half of my order arrived; the second parcel is missing.",
        "The driver never rang the bell and took the package back to the depot.",
        "When will order {order} be dispatched from the warehouse?",
        "The shipment says 'label created' but nothing has moved since {date}.",
        "My parcel was delivered to the wrong address.",
        "How long does standard delivery take to {city}?",
        "The box arrived crushed and the {product} inside was rattling.",
        "Can the courier leave the parcel with my neighbour next time?",
        "Please give me an updated delivery date for order {order}.",
        "It's been {days} days and the order is still 'in transit'.",
        "I paid for next-day shipping and it took over a week.",
        "{carrier} keeps rescheduling the delivery slot.",
        "The tracking link you emailed gives a 'shipment not found' page.",
    ),
    "technical": (
        "The {app} app crashes every time I open it on my {device}.",
        "I keep getting error {error} when I try to sync.",
        "My {product} won't connect to Wi-Fi after the latest firmware update.",
        "Bluetooth pairing with my {device} fails at the last step.",
        "The screen freezes after a few minutes and I have to reboot.",
        "After updating to version {version}, the settings page is blank.",
        "The battery drains from full to zero in about {hours} hours.",
        "I've tried a factory reset and reinstalling, but the bug is still there.",
        "The {product} keeps disconnecting and reconnecting.",
        "Is there a known issue between the {device} and the new software update?",
        "Error {error} pops up whenever I try to export my data.",
        "The sensor readings are way off compared to yesterday.",
        "It overheats while charging and then shuts down.",
        "The {app} app can't find the device during setup.",
        "Firmware update {version} failed halfway and now the light blinks red.",
        "Notifications stopped working on my {device}.",
        "The audio cuts out every few seconds over Bluetooth.",
        "The log shows the process exits with code {error}.",
        "Could you tell me how to roll back the firmware to the previous version?",
        "The touch controls don't respond after the {version} update.",
        "Syncing gets stuck at 99% and then times out.",
        "The {product} reboots on its own several times a day.",
    ),
    "account": (
        "I can't log in to my account even after resetting my password.",
        "The password reset email never arrives at {email}.",
        "My account got locked after too many login attempts.",
        "Please change the email address on my account to {email}.",
        "The two-factor authentication code is always rejected.",
        "I think someone else signed in to my account from {city}.",
        "How do I delete my account and all of my personal data?",
        "I have two accounts and would like to merge them into one.",
        "My username was changed without my permission.",
        "The verification code expires before I can enter it.",
        "I lost my phone and can't get the 2FA codes for my login anymore.",
        "Could you unlock my profile? I'm {name}, the account holder.",
        "The sign-in page just reloads after I enter my credentials.",
        "I never received the account activation link.",
        "Please update the phone number on my profile.",
        "I want to add my partner as a second user on the account.",
        "It says my email is already registered, but I never signed up.",
        "My login session keeps expiring every few minutes.",
        "How do I turn off marketing emails in my account settings?",
        "The security questions on my account don't accept my answers.",
        "I'd like to reset my password but the link says it's invalid.",
    ),
    "returns": (
        "I'd like to return the {product} from order {order}.",
        "The {product} is the wrong size; can I exchange it for {size}?",
        "Please send me a prepaid return label.",
        "I sent the item back on {date}; when will the return be processed?",
        "The {product} arrived faulty and I want a replacement.",
        "Is the return free or do I pay for the return postage?",
        "I don't have the original packaging anymore, can I still return it?",
        "The colour is different from the photos, so I want to send it back.",
        "Can I drop the return off at one of your stores instead of mailing it?",
        "What is your return window? I bought it {days} days ago.",
        "My RMA number is {rma}, but nobody has confirmed the return.",
        "I'd prefer an exchange rather than store credit.",
        "You received my return {days} days ago and I still have no refund.",
        "I ordered two sizes and want to return the one that doesn't fit.",
        "The {product} was a gift; can it be exchanged without a receipt?",
        "The replacement has the same fault, so I want to return it for good.",
        "Where do I print the returns form?",
        "Please arrange a pickup for the return, the {product} is too heavy to carry.",
        "Can I swap the {product} for a different colour?",
        "The returns portal says my order {order} is not eligible for return.",
        "I'm {neg} that my exchange request was declined.",
    ),
    "praise": (
        "Just wanted to say the {product} is {pos}!",
        "{agent} on your support team was incredibly helpful.",
        "Five stars, I would absolutely recommend you.",
        "Best purchase I've made this year.",
        "Thank you for the quick and friendly service.",
        "I'm {pos_feeling} with my new {product}.",
        "Your team went above and beyond for me.",
        "Great quality, and it looks even better in person.",
        "I've already recommended you to my friends and family.",
        "Love it, love it, love it.",
        "Really impressed by the attention to detail.",
        "Kudos to everyone involved, keep up the great work.",
        "It exceeded my expectations in every way.",
        "Customer service like this is rare nowadays.",
        "Super happy with my {product}, thanks a lot!",
        "Honestly the nicest company I've dealt with.",
        "{agent} sorted out my problem in minutes, what a star.",
        "I was a bit {neg} at first, but {agent} turned it around brilliantly.",
        "Delivery was faster than expected and the {product} is {pos}.",
        "Even the return process was painless, which says a lot.",
        "You have a loyal customer for life.",
        "The {product} is {pos}, worth every penny.",
    ),
}

_VAGUE: dict[str, tuple[str, ...]] = {
    "billing": (
        "The number I'm seeing doesn't look right.",
        "I think I paid for something I didn't get.",
        "Something's off with the money side of things.",
        "Why is it more than last time?",
        "This amount makes no sense to me.",
        "I was expecting it to be cheaper.",
        "It came out twice, I think.",
    ),
    "shipping": (
        "Still waiting on it.",
        "It hasn't shown up.",
        "No idea where my stuff is.",
        "It was supposed to be here by now.",
        "Nothing has moved for days.",
        "I think it went somewhere else.",
        "Nobody came.",
    ),
    "technical": (
        "It just stops working sometimes.",
        "It doesn't do what it's supposed to.",
        "Something broke since yesterday.",
        "It keeps acting weird.",
        "Nothing happens when I press the button.",
        "It worked fine until last week.",
        "The light does something strange.",
    ),
    "account": (
        "I can't get in anymore.",
        "It keeps saying my details are wrong.",
        "It doesn't recognise me.",
        "I'm stuck on the first screen.",
        "It won't let me in, again.",
        "Who changed my stuff?",
        "It asks me for a code I don't have.",
    ),
    "returns": (
        "This isn't what I wanted.",
        "What are my options here? It's not right.",
        "I'd rather not keep it.",
        "It doesn't fit the way I hoped.",
        "Can I undo this somehow?",
        "I want my money back for this one.",
        "It's going back, honestly.",
    ),
    "praise": (
        "Honestly, well done.",
        "Just wanted to say something nice for once.",
        "Not bad at all, actually.",
        "You made my day.",
        "Pleasantly surprised.",
        "Keep it up.",
        "No complaints this time.",
    ),
}

_SHORT: dict[str, tuple[str, ...]] = {
    "billing": ("charged twice??", "why this charge", "invoice pls", "refund?", "money gone twice"),
    "shipping": ("where is it", "still waiting", "tracking?", "parcel lost??", "late again"),
    "technical": ("broken again", "error again", "wont connect", "keeps crashing", "not working"),
    "account": ("cant get in", "locked out", "code not working", "login loop", "reset?"),
    "returns": (
        "wrong size",
        "send it back",
        "exchange?",
        "still waiting for refund",
        "doesnt fit",
    ),
    "praise": ("great job", "love it", "amazing", "thanks guys!!", "10/10", "works great now"),
}

# Topic-free sentences: context every ticket has, shared by all topics.
_FILLER: tuple[str, ...] = (
    "I ordered the {product} on {date}.",
    "My order number is {order}.",
    "I've been a customer for {years} years.",
    "Not sure if this is the right place to ask.",
    "Please get back to me as soon as possible.",
    "I already wrote about this last week.",
    "My name is {name} and I'm writing about order {order}.",
    "Let me know if you need any more details.",
    "This is my second message about this.",
    "I called yesterday but nobody picked up.",
    "I've attached a screenshot.",
    "It's the {product}, bought on {date}.",
)

# Context a happy customer gives too.
_FILLER_PRAISE: tuple[str, ...] = (
    "I ordered the {product} on {date}.",
    "My order number is {order}.",
    "I've been a customer for {years} years.",
    "It's the {product}, bought on {date}.",
    "Not sure if this is the right place for this.",
)

_NEG_SENTENCES: tuple[str, ...] = (
    "I'm {neg} about this.",
    "Honestly I'm {neg}.",
    "Pretty {neg} right now, to be honest.",
    "This is not the experience I expected.",
)

_OPENERS: tuple[str, ...] = (
    "Hi team,",
    "Hello,",
    "Hi there,",
    "Dear support,",
    "Hey,",
    "Good morning,",
    "To whom it may concern,",
    "Hi {agent},",
    "Hello support team,",
    "Dear Sir or Madam,",
)

_CLOSERS: tuple[str, ...] = (
    "Thanks",
    "Thanks in advance.",
    "Regards,",
    "Best,",
    "Cheers",
    "Thank you!",
    "Kind regards,",
    "Many thanks,",
    "Looking forward to your reply.",
)

_AGENT_REPLIES: tuple[str, ...] = (
    "Thank you for contacting us. I have passed your case to the relevant team and they "
    "will get back to you within two working days.",
    "We are sorry for the inconvenience. Could you please confirm the details of your "
    "request so that we can look into it further?",
    "Thanks for your patience. Your ticket has been escalated and a specialist will "
    "contact you shortly.",
    "We appreciate your message. Our team is reviewing it and will update you by email.",
)

_DISCLAIMER = (
    "This email and any files transmitted with it are confidential and intended solely "
    "for the use of the individual or entity to whom they are addressed. If you have "
    "received this email in error please notify the sender and delete it. Any views or "
    "opinions presented in this email are solely those of the author and do not "
    "necessarily represent those of the company. Please consider the environment before "
    "printing this email."
)

_EMOJI_NEG = ("😡", "😤", "🙁", "😞", "🤦")
_EMOJI_NEU = ("🙏", "🤔", "📎", "⏳")
_EMOJI_POS = ("😊", "👍", "🎉", "❤️", "😍")

_PRODUCTS = (
    "AeroBlend 300 blender",
    "Nimbus X2 headphones",
    "Trailmate 40L backpack",
    "Lumo desk lamp",
    "Pulse 2 smartwatch",
    "Orbit mesh router",
    "Kestrel e-reader",
    "Brewline coffee grinder",
    "Solace weighted blanket",
    "Vanta running shoes",
    "Halo smart thermostat",
    "Cinder cast-iron pan",
    "Drift wireless earbuds",
    "Atlas standing desk",
    "Juniper linen shirt",
    "Pico robot vacuum",
)
# Products with electronics in them: the ones a technical ticket can be about.
_GADGETS = tuple(
    p for p in _PRODUCTS if not p.startswith(("Trailmate", "Solace", "Vanta", "Cinder", "Juniper"))
)
_DEVICES = (
    "iPhone 13",
    "Pixel 8",
    "Galaxy S22",
    "Windows 11 laptop",
    "MacBook Air",
    "iPad mini",
    "Android tablet",
    "Chromebook",
)
_APPS = ("HomeHub", "FitSync", "Lumo", "Orbit", "Kestrel Reader", "companion")
_NAMES = (
    "Maria Lopez",
    "Ahmed Khan",
    "Chen Wei",
    "José García",
    "Zoë Martin",
    "Łukasz Nowak",
    "Anaïs Dubois",
    "Björn Larsson",
    "Priya Natarajan",
    "Tom O'Brien",
    "Søren Holm",
    "Fatima Zahra",
    "Kenji Sato",
    "Olga Ivanova",
    "Nguyễn Thu",
    "Sam Taylor",
)
_AGENTS = ("Priya", "Tom", "Sofia", "Marcus", "Aiko", "Jonas", "Elena")
_CITIES = ("Leeds", "Lyon", "Austin", "Kraków", "Osaka", "Porto", "Montréal", "Gdańsk")
_CARRIERS = ("DHL", "UPS", "FedEx", "DPD", "The postal service", "Royal Mail", "GLS")
_PLANS = ("Pro", "Family", "Premium", "Team", "Plus")
_SIZES = ("a medium", "a large", "an EU 42", "a size 10", "an XL", "a smaller one")
_NEG = ("frustrated", "annoyed", "disappointed", "really upset", "confused", "fed up")
_POS = ("fantastic", "brilliant", "amazing", "excellent", "superb", "lovely", "perfect")
_POS_FEELING = ("delighted", "thrilled", "so happy", "really pleased", "over the moon")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")  # fmt: skip


def _pick(r: random.Random, options: Sequence[str]) -> str:
    return options[r.randrange(len(options))]


def _amount(r: random.Random) -> str:
    lo, hi = r.choice(((3, 60), (60, 400), (400, 2500)))
    return f"{_pick(r, ('$', '€', '£', '$'))}{r.uniform(lo, hi):,.2f}"


def _order(r: random.Random) -> str:
    n = r.randrange(10_000, 999_999)
    style = r.randrange(4)
    if style == 0:
        return f"#{n}"
    if style == 1:
        return f"A{n}-{r.randrange(10, 99)}"
    if style == 2:
        return f"ORD-{n}"
    return str(n)


def _ordinal_suffix(day: int) -> str:
    if 10 <= day <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def _date(r: random.Random) -> str:
    style = r.randrange(5)
    day = r.randrange(1, 29)
    month = r.randrange(1, 13)
    if style == 0:
        return f"{_MONTHS[month - 1]} {day}"
    if style == 1:
        return f"{month}/{day}"
    if style == 2:
        return f"202{r.randrange(3, 6)}-{month:02d}-{day:02d}"
    if style == 3:
        return _pick(r, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"))
    return f"the {day}{_ordinal_suffix(day)}"


def _error(r: random.Random) -> str:
    style = r.randrange(3)
    if style == 0:
        return f"E-{r.randrange(1000, 9999)}"
    if style == 1:
        return f"0x{r.randrange(2**31):08X}"
    return f"ERR_{_pick(r, ('TIMEOUT', 'AUTH', 'SYNC', 'IO', 'NET'))}_{r.randrange(10, 99)}"


def _email(r: random.Random) -> str:
    user = _pick(r, ("maria", "a.khan", "wei.chen", "jg", "zoe.m", "sam", "olga", "kenji"))
    return f"{user}{r.randrange(1, 999)}@example.com"


_SLOT_MAKERS: dict[str, Callable[[random.Random], str]] = {
    "device": lambda r: _pick(r, _DEVICES),
    "app": lambda r: _pick(r, _APPS),
    "name": lambda r: _pick(r, _NAMES),
    "agent": lambda r: _pick(r, _AGENTS),
    "city": lambda r: _pick(r, _CITIES),
    "carrier": lambda r: _pick(r, _CARRIERS),
    "plan": lambda r: _pick(r, _PLANS),
    "size": lambda r: _pick(r, _SIZES),
    "neg": lambda r: _pick(r, _NEG),
    "pos": lambda r: _pick(r, _POS),
    "pos_feeling": lambda r: _pick(r, _POS_FEELING),
    "amount": _amount,
    "amount2": _amount,
    "order": _order,
    "date": _date,
    "error": _error,
    "email": _email,
    "version": lambda r: f"{r.randrange(1, 6)}.{r.randrange(20)}.{r.randrange(9)}",
    "invoice": lambda r: f"INV-202{r.randrange(3, 6)}-{r.randrange(1000, 99999):05d}",
    "rma": lambda r: f"RMA-{r.randrange(100000, 999999)}",
    "days": lambda r: str(r.randrange(2, 22)),
    "hours": lambda r: str(r.randrange(2, 7)),
    "years": lambda r: str(r.randrange(2, 13)),
}


# Slots drawn afresh at every use (two sentences rarely name the same amount or date).
_FRESH_SLOTS = frozenset({"amount", "amount2", "date", "days", "hours"})


class _Slots(dict[str, str]):
    """Slot values drawn on first use, then kept: one product, one order per item."""

    def __init__(self, r: random.Random, topic: str) -> None:
        super().__init__()
        self._r = r
        self._products = _GADGETS if topic == "technical" else _PRODUCTS

    def __missing__(self, key: str) -> str:
        maker = _SLOT_MAKERS.get(key) or (lambda r: _pick(r, self._products))
        value = maker(self._r)
        if key not in _FRESH_SLOTS:
            self[key] = value
        return value


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
    return _EMOJI_POS if topic == "praise" else _EMOJI_NEG + _EMOJI_NEU


# --------------------------------------------------------------------------- rendering


def _fill(templates: Sequence[str], k: int, r: random.Random, slots: _Slots) -> list[str]:
    """`k` distinct templates of a pool, filled (k is capped at the pool size)."""
    k = min(k, len(templates))
    return [templates[i].format_map(slots) for i in r.sample(range(len(templates)), k)]


def _insert_anywhere(sentences: list[str], extra: list[str], r: random.Random) -> None:
    for s in extra:
        sentences.insert(r.randrange(len(sentences) + 1), s)


def _compose(sentences: list[str], topic: str, r: random.Random, slots: _Slots, noisy: bool) -> str:
    """Ticket or review text around the body sentences: layout, greeting, sign-off, noise."""
    body = [_punct(s, r) for s in sentences]
    for i in range(len(body)):
        if r.random() < 0.07:
            body[i] = f"{body[i]} {_pick(r, _emoji(topic))}"
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
        opener = _pick(r, _OPENERS).format_map(slots)
        text = opener + ("\n\n" if r.random() < 0.6 else " ") + text
    if r.random() < 0.5:
        closer = _pick(r, _CLOSERS)
        if closer.endswith(",") or r.random() < 0.3:
            name = slots["name"]
            closer = f"{closer}\n{name.split(' ')[0] if r.random() < 0.5 else name}"
        text = text + ("\n\n" if "\n" in text or r.random() < 0.5 else " ") + closer
    return text


def _render(topic: str, r: random.Random, mode: str, other_topic: str | None = None) -> str:
    """One item of `topic` rendered in `mode` ("easy" or one of `_HARD_MODES`)."""
    slots = _Slots(r, topic)
    filler = _FILLER_PRAISE if topic == "praise" else _FILLER
    if mode == "easy":
        n_topic = r.choice((1, 2, 2, 3, 3, 3, 4, 4, 5))
        sentences = _fill(_TEMPLATES[topic], n_topic, r, slots)
        extra = _fill(filler, r.randrange(min(2, 6 - n_topic) + 1), r, slots)
        if topic != "praise" and r.random() < 0.2 and len(sentences) + len(extra) < 6:
            extra += _fill(_NEG_SENTENCES, 1, r, slots)
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
        sentences = _fill(_TEMPLATES[topic], n_main - n_vague, r, slots)
        sentences += _fill(_VAGUE[topic], n_vague, r, slots)
        sentences += _fill(_TEMPLATES[other_topic], n_other, r, slots)
        r.shuffle(sentences)
        return _compose(sentences, topic, r, slots, noisy=True)

    if mode == "vague":
        sentences = _fill(_VAGUE[topic], r.randrange(1, 4), r, slots)
        _insert_anywhere(sentences, _fill(filler, r.randrange(3), r, slots), r)
        return _compose(sentences, topic, r, slots, noisy=True)

    if mode == "short":
        text = _pick(r, _SHORT[topic])
        u = r.random()
        if u < 0.2:
            text = f"{text} {_pick(r, _emoji(topic))}"
        elif u < 0.35:
            text = text.upper()
        elif u < 0.5:
            text = f"{_pick(r, ('hi', 'hey', 'hello', 'yo'))} {text}"
        return text

    raise ValueError(f"unknown mode {mode!r}; choose from {('easy', *_HARD_MODES)}")


def _check_topic(topic: str, field: str) -> None:
    if topic not in _TEMPLATES:
        raise ValueError(f"unknown {field} {topic!r}; choose from {sorted(_TEMPLATES)}")


def _py_random(rng: np.random.Generator) -> random.Random:
    """A fast stdlib generator seeded from `rng` (text assembly makes many tiny draws)."""
    return random.Random(int(rng.integers(2**63)))


def render_text(
    topic: str, rng: np.random.Generator, hard: bool, other_topic: str | None = None
) -> str:
    """Text of one item about `topic`.

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
        return _render(topic, r, "mixed", other_topic)
    if not hard:
        return _render(topic, r, "easy")
    mode = r.choices(_HARD_MODES, weights=_HARD_MODE_P)[0]
    other = _pick(r, [t for t in DEFAULT_TOPICS if t != topic]) if mode == "mixed" else None
    return _render(topic, r, mode, other)


def _render_long(topic: str, r: random.Random) -> str:
    """A very long email thread (several thousand words) about `topic`.

    The first message is an ordinary easy item; below it come quoted earlier messages of
    the same customer about the same topic, agent replies and mail disclaimers. The topic
    is clear from the start, so truncating to the first tokens keeps the label.
    """
    target = r.randrange(*_LONG_WORDS)
    parts = [_render(topic, r, "easy")]
    n_words = len(parts[0].split())
    while n_words < target:
        u = r.random()
        if u < 0.6:
            quoted, who = _render(topic, r, "easy"), _pick(r, _NAMES)
        elif u < 0.85:
            quoted, who = _pick(r, _AGENT_REPLIES), f"{_pick(r, _AGENTS)} (Support)"
        else:
            quoted, who = _DISCLAIMER, _pick(r, _NAMES)
        day = f"{_pick(r, _MONTHS)} {r.randrange(1, 29)}"
        block = f"On {day}, {who} wrote:\n" + "\n".join("> " + line for line in quoted.split("\n"))
        parts.append(block)
        n_words += len(block.split())
    return "\n\n".join(parts)


# --------------------------------------------------------------------------- bad items


def _bad_item(kind: str, r: random.Random) -> bytes:
    """Bytes of an unusable drop item of the given kind."""
    if kind == "empty":
        return b""
    if kind == "binary":  # an image dumped under a .txt name: NULs everywhere
        body = bytearray(r.randbytes(r.randrange(300, 900)))
        body[::7] = bytes(len(body[::7]))
        return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(body)
    if kind == "latin1":  # a legacy mail client: accents as single Latin-1 bytes
        text = (
            f"Bonjour, ma commande n°{r.randrange(10_000, 99_999)} n'est toujours pas "
            "arrivée. Très déçu du délai, merci de répondre rapidement.\n"
            "Cordialement, Zoë Lefèvre"
        )
        return text.encode("latin-1")
    if kind == "whitespace":
        return b"  \n\t \r\n    \n"
    raise ValueError(f"unknown bad item kind {kind!r}")


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class TextDemoSpec:
    """What to generate; the whole demo is a pure function of this spec."""

    n_seed_per_class: int = 80
    n_drop: int = 1200
    hard_fraction: float = 0.15  # ambiguous items mixing two topics, vague wording, typos/noise
    seed: int = 0
    classes: tuple[str, ...] = DEFAULT_TOPICS
    n_bad_items: int = 3  # planted bad drop items: empty, binary, Latin-1, whitespace, ...
    long_fraction: float = 0.02  # very long items (several thousand words), drop only

    def __post_init__(self) -> None:
        """Fail fast with the offending field's name, before any file is written."""
        if self.n_seed_per_class <= 0:
            raise ValueError(f"n_seed_per_class must be > 0, got {self.n_seed_per_class}")
        if self.n_drop <= 0:
            raise ValueError(f"n_drop must be > 0, got {self.n_drop}")
        if self.n_bad_items < 0:
            raise ValueError(f"n_bad_items must be >= 0, got {self.n_bad_items}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if not 0.0 <= self.hard_fraction < 1.0:
            raise ValueError(f"hard_fraction must be in [0, 1), got {self.hard_fraction}")
        if not 0.0 <= self.long_fraction < 1.0:
            raise ValueError(f"long_fraction must be in [0, 1), got {self.long_fraction}")
        if self.hard_fraction + self.long_fraction > 1.0:
            raise ValueError(
                f"long_fraction + hard_fraction must be <= 1 (long items are easy ones), "
                f"got {self.long_fraction} + {self.hard_fraction}"
            )
        if len(self.classes) < 2:
            raise ValueError(f"classes needs at least 2 topics, got {self.classes!r}")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be unique, got {self.classes!r}")
        unknown = [c for c in self.classes if c not in _TEMPLATES]
        if unknown:
            raise ValueError(
                f"classes contains topics without templates: {unknown}; "
                f"choose from {sorted(_TEMPLATES)}"
            )


@dataclass(frozen=True)
class TextDemoPaths:
    """Where :func:`write_text_demo` put things."""

    root: Path
    seed_path: Path  # <root>/seed/seed.jsonl — rows {"item_id", "text", "label"}
    drop_dir: Path  # <root>/drop/ — one UTF-8 .txt file per item (+ the bad items)
    drop_manifest: Path  # <root>/drop.jsonl — the good drop items as {"item_id", "text"}
    truth_path: Path  # <root>/truth/drop_truth.csv — not inside drop_dir


def _exact_hard_flags(rng: np.random.Generator, n: int, fraction: float) -> np.ndarray:
    """Exactly round(fraction * n) hard items, at random positions."""
    flags = np.zeros(n, dtype=bool)
    flags[rng.permutation(n)[: round(fraction * n)]] = True
    return flags


def _hard_plan(
    rng: np.random.Generator, labels: np.ndarray, hard: np.ndarray, n_classes: int
) -> tuple[list[str], list[int]]:
    """Per item: the mode ("easy" or a hard mode) and the mixed-in class (-1 if none)."""
    modes = rng.choice(len(_HARD_MODES), size=len(labels), p=_HARD_MODE_P)
    shift = rng.integers(1, n_classes, size=len(labels))  # another class, uniformly
    out_modes: list[str] = []
    out_other: list[int] = []
    for lab, is_hard, m, s in zip(labels, hard, modes, shift, strict=True):
        mode = _HARD_MODES[int(m)] if is_hard else "easy"
        out_modes.append(mode)
        out_other.append(int((lab + s) % n_classes) if mode == "mixed" else -1)
    return out_modes, out_other


def _item_seed(seed: int, stream: int, index: int) -> str:
    """Seed of one item's generator (str seeds hash stably across runs and platforms)."""
    return f"raylabel-demo-texts/{seed}/{stream}/{index}"


def _jsonl(rows: list[dict[str, str]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def write_text_demo(root: Path | str, spec: TextDemoSpec = TextDemoSpec()) -> TextDemoPaths:
    """Write a seed set, a drop (folder and manifest) and the drop's truth under `root`.

    Layout:

    - ``<root>/seed/seed.jsonl`` — labeled seed set, rows ``{"item_id", "text", "label"}``
      with ids ``seed-NNNNNN``, classes shuffled together; exactly ``n_seed_per_class``
      rows per class of which ``round(hard_fraction * n_seed_per_class)`` are hard.
    - ``<root>/drop/item-NNNNNN.txt`` — ``n_drop + n_bad_items`` files, one UTF-8 item
      each, names that do not reveal the class. Classes are mildly imbalanced, as in real
      drops; ``round(hard_fraction * n_drop)`` items are hard and ``round(long_fraction *
      n_drop)`` (at least one when ``long_fraction > 0``) easy items are email threads of
      several thousand words. The bad items (empty file, binary bytes with NULs, Latin-1
      text that is invalid UTF-8, whitespace only; cycling in that order) are numbered
      among the good ones.
    - ``<root>/drop.jsonl`` — the same good drop items as rows ``{"item_id", "text"}``,
      ``item_id`` being the file name and ``text`` exactly the file's content; for the
      manifest input path. Bad items are not in it.
    - ``<root>/truth/drop_truth.csv`` — columns ``item_id,label,hard`` for every file in the
      drop folder; ``hard`` is 0/1, bad items have an empty ``label`` and ``hard`` = 0. It
      lives outside the drop folder: the pipeline must never read it.

    Any previous ``seed``, ``drop`` and ``truth`` folders and ``drop.jsonl`` under `root`
    are removed first, so reruns overwrite cleanly. The same spec gives byte-identical
    files.
    """
    root = Path(root)
    paths = TextDemoPaths(
        root=root,
        seed_path=root / "seed" / "seed.jsonl",
        drop_dir=root / "drop",
        drop_manifest=root / "drop.jsonl",
        truth_path=root / "truth" / "drop_truth.csv",
    )
    for d in (paths.seed_path.parent, paths.drop_dir, paths.truth_path.parent):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    paths.drop_manifest.unlink(missing_ok=True)
    n_classes = len(spec.classes)

    # Seed set: per class, exact hard share; one independent generator per item.
    plan = np.random.default_rng([spec.seed, _STREAM_SEED_PLAN])
    seed_labels = np.repeat(np.arange(n_classes), spec.n_seed_per_class)
    seed_hard = np.concatenate(
        [_exact_hard_flags(plan, spec.n_seed_per_class, spec.hard_fraction) for _ in spec.classes]
    )
    seed_modes, seed_other = _hard_plan(plan, seed_labels, seed_hard, n_classes)
    order = plan.permutation(len(seed_labels))
    seed_rows = []
    for pos, i in enumerate(order.tolist()):
        r = random.Random(_item_seed(spec.seed, _STREAM_SEED_ITEMS, i))
        label = spec.classes[int(seed_labels[i])]
        other = spec.classes[seed_other[i]] if seed_other[i] >= 0 else None
        text = _render(label, r, seed_modes[i], other)
        seed_rows.append({"item_id": f"seed-{pos:06d}", "text": text, "label": label})
    paths.seed_path.write_bytes(_jsonl(seed_rows))

    # Drop plan: which numbers are bad, class of each good item, exact hard and long shares.
    plan = np.random.default_rng([spec.seed, _STREAM_DROP_PLAN])
    total = spec.n_drop + spec.n_bad_items
    bad_positions = set(plan.permutation(total)[: spec.n_bad_items].tolist())
    weights = plan.uniform(0.6, 1.4, size=n_classes)
    labels = plan.choice(n_classes, size=spec.n_drop, p=weights / weights.sum())
    hard_flags = _exact_hard_flags(plan, spec.n_drop, spec.hard_fraction)
    modes, others = _hard_plan(plan, labels, hard_flags, n_classes)
    n_long = round(spec.long_fraction * spec.n_drop)
    if spec.long_fraction > 0:
        n_long = min(max(n_long, 1), int((~hard_flags).sum()))
    easy_idx = np.flatnonzero(~hard_flags)
    long_set = set(plan.permutation(easy_idx)[:n_long].tolist())

    truth: list[tuple[str, str, int]] = []
    manifest: list[dict[str, str]] = []
    good = bad = 0
    for idx in range(total):
        name = f"item-{idx:06d}.txt"
        if idx in bad_positions:
            r = random.Random(_item_seed(spec.seed, _STREAM_BAD_ITEMS, bad))
            data = _bad_item(_BAD_KINDS[bad % len(_BAD_KINDS)], r)
            truth.append((name, "", 0))
            bad += 1
        else:
            r = random.Random(_item_seed(spec.seed, _STREAM_DROP_ITEMS, good))
            label = spec.classes[int(labels[good])]
            if good in long_set:
                text = _render_long(label, r)
            else:
                other = spec.classes[others[good]] if others[good] >= 0 else None
                text = _render(label, r, modes[good], other)
            data = text.encode("utf-8")
            truth.append((name, label, int(hard_flags[good])))
            manifest.append({"item_id": name, "text": text})
            good += 1
        (paths.drop_dir / name).write_bytes(data)

    paths.drop_manifest.write_bytes(_jsonl(manifest))
    with paths.truth_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["item_id", "label", "hard"])
        writer.writerows(truth)
    return paths
