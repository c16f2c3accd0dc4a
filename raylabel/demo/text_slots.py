"""Values for the `{slot}` fields of the text demo's sentences (products, orders, dates, ...).

Why a module of its own: filling a slot is the one place where an item's sentences must
agree with each other (one product, one order number per message) while amounts and dates
stay varied; :class:`Slots` holds that rule, the makers below only draw values.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from raylabel.demo.text_vocabulary import (
    AGENTS,
    APPS,
    CARRIERS,
    CITIES,
    DEVICES,
    GADGETS,
    MONTHS,
    NAMES,
    NEG,
    PLANS,
    POS,
    POS_FEELING,
    PRODUCTS,
    SIZES,
)


def pick(r: random.Random, options: Sequence[str]) -> str:
    """One uniform draw that slot makers and rendering share, so both use the stream alike."""
    return options[r.randrange(len(options))]


def _amount(r: random.Random) -> str:
    lo, hi = r.choice(((3, 60), (60, 400), (400, 2500)))
    return f"{pick(r, ('$', '€', '£', '$'))}{r.uniform(lo, hi):,.2f}"


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
        return f"{MONTHS[month - 1]} {day}"
    if style == 1:
        return f"{month}/{day}"
    if style == 2:
        return f"202{r.randrange(3, 6)}-{month:02d}-{day:02d}"
    if style == 3:
        return pick(r, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"))
    return f"the {day}{_ordinal_suffix(day)}"


def _error(r: random.Random) -> str:
    style = r.randrange(3)
    if style == 0:
        return f"E-{r.randrange(1000, 9999)}"
    if style == 1:
        return f"0x{r.randrange(2**31):08X}"
    return f"ERR_{pick(r, ('TIMEOUT', 'AUTH', 'SYNC', 'IO', 'NET'))}_{r.randrange(10, 99)}"


def _email(r: random.Random) -> str:
    user = pick(r, ("maria", "a.khan", "wei.chen", "jg", "zoe.m", "sam", "olga", "kenji"))
    return f"{user}{r.randrange(1, 999)}@example.com"


_SLOT_MAKERS: dict[str, Callable[[random.Random], str]] = {
    "device": lambda r: pick(r, DEVICES),
    "app": lambda r: pick(r, APPS),
    "name": lambda r: pick(r, NAMES),
    "agent": lambda r: pick(r, AGENTS),
    "city": lambda r: pick(r, CITIES),
    "carrier": lambda r: pick(r, CARRIERS),
    "plan": lambda r: pick(r, PLANS),
    "size": lambda r: pick(r, SIZES),
    "neg": lambda r: pick(r, NEG),
    "pos": lambda r: pick(r, POS),
    "pos_feeling": lambda r: pick(r, POS_FEELING),
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


class Slots(dict[str, str]):
    """Keeps an item's sentences consistent: values drawn on first use, then kept."""

    def __init__(self, r: random.Random, topic: str) -> None:
        super().__init__()
        self._r = r
        self._products = GADGETS if topic == "technical" else PRODUCTS

    def __missing__(self, key: str) -> str:
        """Lets `str.format_map` draw a slot's value the first time a sentence needs it."""
        maker = _SLOT_MAKERS.get(key) or (lambda r: pick(r, self._products))
        value = maker(self._r)
        if key not in _FRESH_SLOTS:
            self[key] = value
        return value
