"""Time-ordered submission ids (ULID: 48-bit millisecond time + 80 random bits)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
# Two characters per 10 bits: half the steps per id (two are made per API request).
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]


def new_id(now: datetime | None = None) -> str:
    millis = int((now.timestamp() if now else time.time()) * 1000)
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in range(120, -1, -10)])


def id_time(submission_id: str) -> datetime:
    value = 0
    for char in submission_id:
        value = value * 32 + _ALPHABET.index(char)
    return datetime.fromtimestamp((value >> 80) / 1000, tz=UTC)
