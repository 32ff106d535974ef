"""`ingest`, except that it rejects every submission of type `poison.ingest` for good.

The alarm tests run this in place of `runtime/functions/ingest.py` to make the relay give a
submission up (`failed`), as it does for one the real `ingest` refuses (a bad checksum, an
envelope it cannot read).
"""

from __future__ import annotations

from typing import Any

import functions_framework

from runtime.envelope import IngestResult
from runtime.functions import ingest as real

POISON_TYPE = "poison.ingest"
_validate = real.validate_items


def validate_items(items: list[dict[str, Any]]) -> list:
    checked = _validate(items)
    return [
        IngestResult(submission_id=item.submission_id, status="rejected", error="injected")
        if getattr(item, "type", None) == POISON_TYPE
        else item
        for item in checked
    ]


real.validate_items = validate_items  # type: ignore[assignment]


@functions_framework.http
def ingest(request: Any) -> Any:
    return real.ingest(request)
