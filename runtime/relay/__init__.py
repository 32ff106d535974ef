"""The relay: delivers the outbox to GCP's `ingest` function.

`python -m runtime.relay` runs it; `python -m runtime.relay replay` re-queues failed rows.

Each round claims a batch of due outbox rows (`runtime.outbox`), posts them to `ingest` in
one request (`ingest_client`), and settles each row by what `ingest` said about it:
published → forwarded, rejected → failed, anything else → retried later with exponential
backoff and full jitter (`loop`). A row that reaches the attempt limit is marked failed,
never deleted. While `ingest` keeps failing a circuit breaker (`breaker`) stops the
hammering. A relay killed mid-batch loses nothing: its lease runs out and another round
claims the rows again.
"""

from __future__ import annotations

from runtime.relay.breaker import CircuitBreaker
from runtime.relay.ingest_client import IngestClient, Outcome
from runtime.relay.loop import Relay, replay

__all__ = ["CircuitBreaker", "IngestClient", "Outcome", "Relay", "replay"]
