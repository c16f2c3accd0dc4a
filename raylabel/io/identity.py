"""Order-independent fingerprints of item ids: the commit check that no row was lost or
doubled, whatever order write tasks finished in.

Each id hashes to 64 bits; a set of rows is the sum of its ids' hashes modulo 2^64. The
plan sums every input row, each write task sums the rows it wrote (labels and errors),
and the run commits only if the two agree: a count can balance a lost row with a doubled
one, the id sum cannot (short of a 1-in-2^64 accident).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import pyarrow as pa

MASK = (1 << 64) - 1


def id_hash(item_id: str) -> int:
    """64-bit hash of one id, the same in every process (Python's hash() is salted)."""
    return int.from_bytes(hashlib.blake2b(item_id.encode(), digest_size=8).digest(), "little")


def id_hash_sum(ids: Iterable[str] | pa.Array | pa.ChunkedArray) -> int:
    """Sum of the ids' hashes modulo 2^64 (rows, so an id that repeats counts each time)."""
    values = ids.to_pylist() if isinstance(ids, pa.Array | pa.ChunkedArray) else ids
    blake = hashlib.blake2b
    total = 0
    for v in values:
        total += int.from_bytes(blake(str(v).encode(), digest_size=8).digest(), "little")
    return total & MASK


def combine(*sums: int) -> int:
    """Sums of disjoint row sets add up the same way."""
    return sum(sums) & MASK
