"""`store`, except that every delivery of a submission of type `poison` fails.

The fault tests run this in place of `runtime/functions/store.py` to watch one message
exhaust its delivery attempts and land on the dead-letter topic.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import functions_framework

from runtime.functions import store as real

POISON_TYPE = "poison"


class InjectedFault(RuntimeError):
    pass


@functions_framework.cloud_event
def store(cloud_event: Any) -> None:
    message = (cloud_event.data or {}).get("message") or {}
    try:
        body = json.loads(base64.b64decode(message.get("data") or ""))
    except (binascii.Error, ValueError):
        body = {}
    if isinstance(body, dict) and body.get("type") == POISON_TYPE:
        raise InjectedFault(f"injected failure for {body.get('submission_id')}")
    real.store(cloud_event)
