"""The relay's side of the wire: the batch it POSTs to `ingest` and what the answer means."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import requests

from runtime import httpclient
from runtime.envelope import SCHEMA_VERSION, IngestResponse, wire_time
from runtime.outbox import Claimed
from runtime.token_sources import TokenSource

log = logging.getLogger("skybridge.relay")


@dataclass
class Outcome:
    forwarded: dict[str, str] = field(default_factory=dict)  # submission id → message id
    rejected: dict[str, str] = field(default_factory=dict)  # submission id → reason
    retry: dict[str, str] = field(default_factory=dict)  # submission id → reason


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


class IngestClient:
    def __init__(
        self,
        url: str,
        token_source: TokenSource,
        *,
        timeout: float,
        source: str,
        session: requests.Session | None = None,
    ) -> None:
        self.url = url
        self.token_source = token_source
        self.timeout = timeout
        self.source = source
        self.session = session or httpclient.session()

    def post(self, batch: list[Claimed]) -> Outcome:
        ids = [claimed.submission_id for claimed in batch]
        try:
            headers = {"Content-Type": "application/json"}
            token = self.token_source.token()
            if token:
                headers["Authorization"] = f"Bearer {token}"
            body = {
                "schema_version": SCHEMA_VERSION,
                "items": [item(claimed, self.source) for claimed in batch],
            }
            response = self.session.post(
                self.url,
                data=json.dumps(body, separators=(",", ":")),
                headers=headers,
                timeout=self.timeout,
            )
        except Exception as error:  # noqa: BLE001 — any failure to deliver is retried later
            return Outcome(retry=dict.fromkeys(ids, f"{type(error).__name__}: {error}"[:900]))
        if response.status_code != 200:
            reason = f"ingest answered HTTP {response.status_code}: {response.text[:300]}"
            log.warning(reason, extra={"event": "relay.batch_failed", "batch": len(batch)})
            return Outcome(retry=dict.fromkeys(ids, reason))
        try:
            parsed = IngestResponse.model_validate_json(response.content)
        except ValueError:
            return Outcome(retry=dict.fromkeys(ids, "ingest answered with an unreadable body"))
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
