"""Time-ordered submission ids (ULID: 48-bit millisecond time + 80 random bits)."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
# Two characters per 10 bits: half the steps per id (two are made per API request).
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]


_RANDOM_MAX = (1 << 80) - 1
_last = [0, 0]  # millisecond and random part of the previous id of this process
_lock = threading.Lock()
# A forked child must not continue its parent's sequence: both would make the same ids.
os.register_at_fork(after_in_child=lambda: _last.__setitem__(slice(None), (0, 0)))


def new_id(now: datetime | None = None) -> str:
    """A ULID, monotonic within the process: in the millisecond of the previous id, the
    random part is the previous one's plus one (ULID's monotonic mode)."""
    millis = int((now.timestamp() if now else time.time()) * 1000)
    with _lock:
        if millis == _last[0] and _last[1] < _RANDOM_MAX:
            random = _last[1] + 1
        else:
            random = int.from_bytes(os.urandom(10), "big")
        _last[:] = millis, random
    value = (millis << 80) | random
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in range(120, -1, -10)])


def id_time(submission_id: str) -> datetime:
    value = 0
    for char in submission_id:
        value = value * 32 + _ALPHABET.index(char)
    return datetime.fromtimestamp((value >> 80) / 1000, tz=UTC)
