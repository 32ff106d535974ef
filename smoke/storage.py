"""The bucket `store` writes to, read the one way every checker reads it: the smoke check,
the local demo, the benchmarks and the fault tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

# Every object `store` writes lives under this prefix (runtime.envelope.object_name).
SUBMISSIONS_PREFIX = "submissions/"

Listing = Iterator[tuple[str, Callable[[], bytes]]]


def emulator_client(url: str, project: str = "local"):
    """A real google-cloud-storage client pointed at an emulator (fake-gcs-server)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(
        project=project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": url},
    )


def bucket(name: str, endpoint: str | None = None):
    """The bucket on Cloud Storage (application default credentials), or on the emulator
    at `endpoint`."""
    from google.cloud import storage

    client = emulator_client(endpoint) if endpoint else storage.Client()
    return client.bucket(name)


def stored_submissions(bucket: Any) -> Listing:
    """(object name, download) of every stored submission; downloads only when called."""
    for blob in bucket.list_blobs(prefix=SUBMISSIONS_PREFIX):
        yield blob.name, blob.download_as_bytes


def stored_assets(bucket: Any) -> dict[str, dict[str, Any]]:
    """Every stored submission, downloaded and parsed: object name → asset."""
    return _downloaded(stored_submissions(bucket))


def wait_for_count(bucket: Any, expected: int, timeout: float) -> dict[str, dict[str, Any]]:
    """The stored assets once there are at least `expected` of them, or at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        listing = list(stored_submissions(bucket))
        if len(listing) >= expected or time.monotonic() > deadline:
            return _downloaded(listing)
        time.sleep(0.5)


def _downloaded(listing: Iterable[tuple[str, Callable[[], bytes]]]) -> dict[str, dict[str, Any]]:
    return {name: json.loads(download()) for name, download in listing}
