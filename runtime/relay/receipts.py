"""The relay's receipts consumer: pulls GCP's receipts and marks submissions stored.

It runs as a thread of the relay process (`python -m runtime.relay`), so every instance
that delivers also confirms, with the same Workload Identity credentials and no new unit;
`python -m runtime.relay receipts` runs it alone. Each round pulls a batch from the
receipts subscription, applies it in one transaction (`runtime.receipts.apply`), and only
then acknowledges it: a consumer killed mid-batch acknowledged nothing, Pub/Sub delivers
the batch again, and applying a receipt twice changes nothing. A message that is not a
receipt at all is logged and acknowledged (it would never become one).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine

from runtime import receipts
from runtime.db import utcnow
from runtime.envelope import Receipt
from runtime.observability import Metrics
from runtime.settings import Settings, SettingsError

log = logging.getLogger("skybridge.relay.receipts")


def subscriber_from_settings(settings: Settings) -> Any:
    """A Pub/Sub subscriber client, imported only now (it costs ~300 ms of start-up)."""
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import pubsub_v1

    from runtime.token_sources import google_credentials_from_settings

    settings.require("receipts_subscription")
    try:
        return pubsub_v1.SubscriberClient(credentials=google_credentials_from_settings(settings))
    except DefaultCredentialsError:
        raise SettingsError(
            "no Google credentials for the receipts subscriber: on AWS set "
            "SKYBRIDGE_TOKEN_SOURCE=aws-wif and SKYBRIDGE_GCP_CREDENTIAL_CONFIG; locally set "
            "PUBSUB_EMULATOR_HOST"
        ) from None


class ReceiptConsumer:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        subscriber: Any,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        settings.require("receipts_subscription")
        self.engine = engine
        self.settings = settings
        self.subscription = settings.receipts_subscription
        self.subscriber = subscriber
        self.metrics = metrics or Metrics("none", "", "relay")
        self.stopping = threading.Event()
        self._failures = 0

    def run(self) -> None:
        log.info("receipts consumer started", extra={"event": "receipts.started"})
        while not self.stopping.is_set():
            try:
                self.run_once()
                self._failures = 0
            except Exception as error:  # noqa: BLE001 — a bad round must not end the loop
                self._failures += 1
                ceiling = min(30.0, self.settings.relay_backoff_max)
                pause = min(ceiling, 0.5 * 2 ** min(self._failures, 6))
                log.warning(
                    "receipts round failed (retrying in %.1fs): %s",
                    pause,
                    error,
                    extra={"event": "receipts.round_failed"},
                )
                self.stopping.wait(pause)
        log.info("receipts consumer stopped", extra={"event": "receipts.stopped"})

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="receipts", daemon=True)
        thread.start()
        return thread

    def stop(self, *_: Any) -> None:
        self.stopping.set()

    def run_once(self) -> int:
        """Pull, apply, acknowledge. Returns how many messages it acknowledged."""
        from google.api_core import exceptions

        try:
            response = self.subscriber.pull(
                request={
                    "subscription": self.subscription,
                    "max_messages": self.settings.receipts_batch_size,
                },
                timeout=self.settings.receipts_pull_timeout,
            )
        except exceptions.DeadlineExceeded:
            return 0  # nothing to pull within the timeout
        messages = list(response.received_messages)
        if not messages:
            return 0
        parsed: list[Receipt] = []
        for received in messages:
            try:
                parsed.append(Receipt.model_validate_json(received.message.data))
            except ValidationError as error:
                log.error(
                    "message on the receipts subscription is not a receipt: %s",
                    str(error)[:300],
                    extra={
                        "event": "receipt.undecodable",
                        "message_id": received.message.message_id,
                    },
                )
        # A database error raises before the acknowledgement: Pub/Sub delivers the batch
        # again after its ack deadline.
        applied = receipts.apply(self.engine, parsed, utcnow())
        self.metrics.emit(
            {
                "Stored": (len(applied.stored), "Count"),
                "ReceiptMismatch": (len(applied.mismatched), "Count"),
                "ReceiptDuplicate": (len(applied.already), "Count"),
                "ReceiptUnknown": (len(applied.unknown), "Count"),
            }
        )
        latencies = list(applied.stored.values())
        for start in range(0, len(latencies), 100):  # EMF takes at most 100 values a metric
            chunk = latencies[start : start + 100]
            self.metrics.emit({"EndToEndLatencyMs": (chunk, "Milliseconds")})
        # Counted once committed, so a redelivery after a lost ack is not counted again.
        self.subscriber.acknowledge(
            request={
                "subscription": self.subscription,
                "ack_ids": [received.ack_id for received in messages],
            }
        )
        return len(messages)
