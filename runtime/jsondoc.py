"""What JSON skybridge accepts, defined once and enforced at every stage.

The API enforces it at the edge; the relay serialises with it; `ingest` judges each item
by it and `store` each message, so anything the API accepted every later stage accepts,
and anything else is refused where it enters (a 4xx naming the field), never deep inside
the pipeline where it would sink a batch or a subscription.

The policy is I-JSON (RFC 7493, https://www.rfc-editor.org/rfc/rfc7493), which every
mainstream parser reads the same way, plus a depth and a size:

* UTF-8 only, and every string and every object key a sequence of Unicode scalar values:
  a lone surrogate (`"\\udfff"`, which Python's `json` accepts) is refused, never silently
  replaced by U+FFFD.
* Numbers: finite doubles only (`1e400` overflows to infinity in Python's `json`, and
  `NaN`/`Infinity` are not JSON); integers within ±(2^53 - 1), the range a double holds
  exactly (RFC 7493 §2.2): beyond it JavaScript, BigQuery or a float-based parser would read
  another number than the client sent, so such integers are refused (send them as strings),
  in any notation (`1e20` is an integer to JSON Schema), so no number lies outside that range.
* Object keys unique within their object (RFC 7493 §2.3): with duplicates, parsers differ on
  which value wins.
* At most `MAX_DEPTH` levels of nesting in a submission (the body `{"type", "data"}` is
  level 1), far below pydantic's JSON parser limit of 200 even inside the envelopes that
  wrap `data` on its way (a batch for `ingest` adds 3 levels).
* Size: the API's body limit (`SKYBRIDGE_MAX_BODY_BYTES`, at most `MAX_DOCUMENT_BYTES`)
  applies to the raw body and to its canonical form.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64
MAX_SAFE_INTEGER = 2**53 - 1
_SAFE_DIGITS = len(str(MAX_SAFE_INTEGER))  # 16: a longer literal is past the bound
MAX_DOCUMENT_BYTES = 1024 * 1024  # the ceiling for SKYBRIDGE_MAX_BODY_BYTES


class JsonSyntaxError(ValueError):
    """The bytes are not JSON at all (or not UTF-8): a 400."""


class JsonRejected(ValueError):
    """Valid JSON outside the policy: a 422 naming the field (`location`)."""

    def __init__(self, location: tuple[str | int, ...], reason: str) -> None:
        super().__init__(f"{'/'.join(str(p) for p in location) or 'body'}: {reason}")
        self.location = location
        self.reason = reason


class _DuplicateKeys(dict):
    """An object that had a key twice; `check` refuses it where it knows the path."""

    duplicate: str = ""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) == len(pairs):
        return value
    marked = _DuplicateKeys(value)
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            marked.duplicate = key
            break
        seen.add(key)
    return marked


def _not_json(name: str) -> None:
    raise JsonSyntaxError(f"malformed JSON: {name} is not a JSON value")


def _integer(digits: str) -> int:
    """An integer literal. Python refuses to convert more than 4,300 digits (a guard against
    quadratic `int()`, `sys.get_int_max_str_digits()`), which `json.loads` lets out as a bare
    ValueError from anywhere in the document; JSON sets no such limit. A literal of more
    than 16 digits (JSON allows no leading zeros) lies beyond ±(2^53 - 1) whatever its
    digits, so it parses as the first integer past the bound, which `check` refuses with
    its location like any other."""
    negative = digits.startswith("-")
    if len(digits) - negative > _SAFE_DIGITS:
        return -(MAX_SAFE_INTEGER + 1) if negative else MAX_SAFE_INTEGER + 1
    return int(digits)


def parse(raw: bytes | str) -> Any:
    """JSON text → Python value, refusing what is not JSON. The policy is `check`'s (an
    integer too long to convert comes back as one just past its bound, for `check`)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
    except UnicodeDecodeError as error:
        raise JsonSyntaxError(f"the body is not valid UTF-8 (byte {error.start})") from None
    try:
        # 1e400 comes back as infinity (valid JSON syntax, outside the policy); `check`
        # refuses it with its location.
        return json.loads(
            text, object_pairs_hook=_object, parse_constant=_not_json, parse_int=_integer
        )
    except json.JSONDecodeError as error:
        raise JsonSyntaxError(
            f"malformed JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except RecursionError:
        raise JsonSyntaxError(f"nested deeper than {MAX_DEPTH} levels") from None


def check(value: Any, location: tuple[str | int, ...] = (), depth: int = 0) -> None:
    """Raise JsonRejected for the first part of `value` outside the policy. `depth` is the
    nesting level `value` sits at (0 for a whole document, 1 for a submission's `data`)."""
    if isinstance(value, str):
        _scalar_values(value, location, "string")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise JsonRejected(
                location,
                "integers must be within ±(2^53 - 1) (RFC 7493); send larger ones as strings",
            )
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise JsonRejected(location, "numbers must be finite doubles (this one overflows)")
        # 1e20 is the integer 10^20 to JSON Schema and to JavaScript, whatever its notation,
        # so the integer bound applies to it too; every double past 2^53 is integral, which
        # makes the whole rule "every number within ±(2^53 - 1)", as the OpenAPI says.
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise JsonRejected(
                location,
                "numbers must be within ±(2^53 - 1) (RFC 7493), in any notation;"
                " send larger ones as strings",
            )
    elif isinstance(value, dict):
        if depth + 1 > MAX_DEPTH:
            raise JsonRejected(location, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, _DuplicateKeys):
            raise JsonRejected(location, f"the key {value.duplicate!r} appears twice")
        for key, item in value.items():
            if not isinstance(key, str):
                raise JsonRejected(location, "object keys must be strings")
            _scalar_values(key, location, "key")
            check(item, (*location, key), depth + 1)
    elif isinstance(value, list | tuple):
        if depth + 1 > MAX_DEPTH:
            raise JsonRejected(location, f"nested deeper than {MAX_DEPTH} levels")
        for index, item in enumerate(value):
            check(item, (*location, index), depth + 1)
    else:
        raise JsonRejected(location, f"{type(value).__name__} is not a JSON value")


def _scalar_values(text: str, location: tuple[str | int, ...], what: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise JsonRejected(
            location,
            f"the {what} has a lone surrogate (U+{ord(text[error.start]):04X} at "
            f"{error.start}); strings and keys must be Unicode scalar values",
        ) from None


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    """The one serialisation: UTF-8 as is (no `ensure_ascii`, which turns one "é" into six
    bytes), no spaces, no NaN. With sort_keys, the canonical form that is hashed."""
    return json.dumps(
        value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def load(raw: bytes | str, location: tuple[str | int, ...] = ()) -> Any:
    """`parse` then `check`: a whole document held to the policy."""
    value = parse(raw)
    check(value, location)
    return value
