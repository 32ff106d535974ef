"""The relay's side of the wire: the batch it POSTs to `ingest` and what the answer means.

Items are serialised one by one with the runtime's one JSON serialisation (UTF-8 as is: a
256 KiB body of "é" stays 256 KiB, where `ensure_ascii` made it 768 KiB), and a batch is
the concatenation of its items, so splitting a batch never serialises anything again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import requests

from runtime import httpclient, jsondoc
from runtime.envelope import SCHEMA_VERSION, IngestResponse, wire_time
from runtime.outbox import Claimed
from runtime.token_sources import TokenSource

log = logging.getLogger("skybridge.relay")

_HEAD = b'{"schema_version":"' + SCHEMA_VERSION.encode() + b'","items":['
_TAIL = b"]}"
# What ingest (or Cloud Run in front of it: 413 past 32 MiB) answers for a request it will
# never take as it is; any other failure (5xx, 401/403 while WIF is being fixed, a timeout)
# may pass if tried again.
PERMANENT_STATUSES = frozenset({400, 413, 422})


@dataclass(frozen=True)
class Item:
    claimed: Claimed
    payload: bytes  # this item's JSON, as it goes into the batch

    @property
    def submission_id(self) -> str:
        return self.claimed.submission_id


@dataclass
class Outcome:
    forwarded: dict[str, str] = field(default_factory=dict)  # submission id → message id
    rejected: dict[str, str] = field(default_factory=dict)  # submission id → reason
    retry: dict[str, str] = field(default_factory=dict)  # submission id → reason
    # Set when ingest did not judge the items but refused or lost the request as a whole.
    batch_error: str | None = None
    permanent: bool = False  # ...and sending the same request again would not help

    def merge(self, other: Outcome) -> Outcome:
        """Both outcomes' judgements on their items (a merged outcome is not a request's)."""
        return Outcome(
            forwarded=self.forwarded | other.forwarded,
            rejected=self.rejected | other.rejected,
            retry=self.retry | other.retry,
        )


def item(claimed: Claimed, source: str) -> dict[str, Any]:
    """One `ForwardedSubmission`, from the stored envelope."""
    envelope = json.loads(claimed.body)
    return {
        "submission_id": claimed.submission_id,
        "schema_version": envelope["schema_version"],
        "type": envelope["type"],
        "data": envelope["data"],
        "sha256": claimed.sha256,
        "received_at": wire_time(claimed.received_at),
        "source": source,
    }


def serialise(claimed: Claimed, source: str) -> Item:
    """The item as bytes; ValueError if the stored row cannot be one (a row written before
    the JSON policy, or by hand), which no retry will change."""
    value = item(claimed, source)
    jsondoc.check(value)
    return Item(claimed, jsondoc.dumps(value))


def body(items: list[Item]) -> bytes:
    return _HEAD + b",".join(i.payload for i in items) + _TAIL


def batch_size(items: list[Item]) -> int:
    return len(_HEAD) + len(_TAIL) + sum(len(i.payload) + 1 for i in items)


def pack(items: list[Item], max_bytes: int) -> list[list[Item]]:
    """Consecutive batches of at most `max_bytes` each (an item larger than that alone)."""
    batches: list[list[Item]] = []
    current: list[Item] = []
    size = len(_HEAD) + len(_TAIL)
    for entry in items:
        if current and size + len(entry.payload) + 1 > max_bytes:
            batches.append(current)
            current, size = [], len(_HEAD) + len(_TAIL)
        current.append(entry)
        size += len(entry.payload) + 1
    if current:
        batches.append(current)
    return batches


class IngestClient:
    def __init__(
        self,
        url: str,
        token_source: TokenSource,
        *,
        timeout: float,
        session: requests.Session | None = None,
    ) -> None:
        self.url = url
        self.token_source = token_source
        self.timeout = timeout
        self.session = session or httpclient.session()

    def post(self, items: list[Item]) -> Outcome:
        ids = [entry.submission_id for entry in items]

        def whole(reason: str, permanent: bool = False) -> Outcome:
            return Outcome(
                retry=dict.fromkeys(ids, reason[:900]), batch_error=reason, permanent=permanent
            )

        try:
            headers = {"Content-Type": "application/json"}
            token = self.token_source.token()
            if token:
                headers["Authorization"] = f"Bearer {token}"
            response = self.session.post(
                self.url, data=body(items), headers=headers, timeout=self.timeout
            )
        except Exception as error:  # noqa: BLE001 — any failure to deliver is retried later
            return whole(f"{type(error).__name__}: {error}")
        if response.status_code != 200:
            reason = f"ingest answered HTTP {response.status_code}: {response.text[:300]}"
            log.warning(reason, extra={"event": "relay.batch_failed", "batch": len(items)})
            return whole(reason, permanent=response.status_code in PERMANENT_STATUSES)
        try:
            parsed = IngestResponse.model_validate_json(response.content)
        except ValueError:
            return whole("ingest answered with an unreadable body")
        outcome = Outcome()
        for result in parsed.results:
            if result.submission_id not in ids:
                continue
            if result.status == "published" and result.message_id:
                outcome.forwarded[result.submission_id] = result.message_id
            elif result.status == "rejected":
                outcome.rejected[result.submission_id] = f"rejected by ingest: {result.error}"
            else:
                outcome.retry[result.submission_id] = f"ingest could not publish: {result.error}"
        for missing in set(ids) - outcome.forwarded.keys() - outcome.rejected.keys():
            outcome.retry.setdefault(missing, "ingest did not report on this submission")
        return outcome
