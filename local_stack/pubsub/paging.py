"""Paging for the List calls: `page_size` (0: the service's default) and opaque page tokens."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import TypeVar

from local_stack.pubsub.errors import invalid

DEFAULT_PAGE_SIZE = 100  # the real service's default page size for the List calls
MAX_PAGE_SIZE = 1000

T = TypeVar("T")


def page(names: Sequence[str], items: Sequence[T], size: int, token: str) -> tuple[list[T], str]:
    """One page of `items` (sorted by `names`) and the token of the next ("" at the end).

    The token is the last name handed out, so a page is stable when resources are created or
    deleted between calls."""
    if size < 0:
        raise invalid("page_size must not be negative")
    size = min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    start = 0
    if token:
        try:
            after = base64.urlsafe_b64decode(token.encode()).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise invalid(f"Invalid page_token: {token}") from None
        start = next((i for i, name in enumerate(names) if name > after), len(names))
    chosen = list(items[start : start + size])
    if start + size >= len(names):
        return chosen, ""
    return chosen, base64.urlsafe_b64encode(names[start + size - 1].encode()).decode()
