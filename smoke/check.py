"""Post varied submissions, wait until each is an object in storage and confirmed `stored`
by the AWS side's own status (from GCP's receipt), compare what came out."""

from __future__ import annotations

import json
import random
import re
import statistics
import string
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests

from runtime.envelope import SubmissionIn, sha256_hex

Progress = Callable[[int], None]


def varied_submissions(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Submissions of several shapes and sizes: unicode, nesting, numbers, nulls, big text."""
    rng = random.Random(seed)  # noqa: S311 — test data, not secrets
    words = ["skybridge", "Zürich", "東京", "naïve", "emoji 🚀", "a\nb", 'q"uote', ""]
    shapes: list[Callable[[int], dict[str, Any]]] = [
        lambda i: {"caption": rng.choice(words), "n": i},
        lambda i: {"nested": {"list": [1, 2.5, None, True, {"k": rng.choice(words)}]}, "i": i},
        lambda i: {"blob": "".join(rng.choices(string.ascii_letters, k=rng.randint(1, 20_000)))},
        lambda i: {"big_int": 2**53 - 1 - i, "neg": -i, "float": i / 7},  # I-JSON range
        lambda i: {},
        lambda i: {"tags": [rng.choice(words) for _ in range(rng.randint(0, 30))], "i": i},
    ]
    types = ["photo.uploaded", "form.submitted", "order/created", "sensor:reading", "note"]
    return [
        {"type": rng.choice(types), "data": rng.choice(shapes)(index)} for index in range(count)
    ]


@dataclass
class Sent:
    body: dict[str, Any]
    key: str
    status: int = 0
    id: str = ""
    object_name: str = ""
    sha256: str = ""
    received_at: datetime | None = None
    error: str = ""


@dataclass
class Report:
    sent: list[Sent]
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)  # object name → asset
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)  # id → GET body
    dead_lettered: int = 0
    mismatches: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for body in self.statuses.values() if body.get("status") == status)

    @property
    def confirmed(self) -> int:
        """Submissions the AWS side itself reports `stored` (a receipt with the right hash)."""
        return self.count("stored")

    def confirmed_latencies_ms(self) -> list[float]:
        """accepted → stored as AWS records it (its received_at and the receipt's stored_at)."""
        values = []
        for body in self.statuses.values():
            if body.get("stored_at") and body.get("received_at"):
                stored_at = datetime.fromisoformat(body["stored_at"])
                received_at = datetime.fromisoformat(body["received_at"])
                values.append((stored_at - received_at).total_seconds() * 1000)
        return sorted(values)

    @property
    def accepted(self) -> list[Sent]:
        return [s for s in self.sent if s.status == 202]

    @property
    def forwarded(self) -> int:
        """Forwarded at least once: still waiting for a receipt, or confirmed stored."""
        return self.count("forwarded") + self.confirmed

    def latencies_ms(self) -> list[float]:
        values = []
        for sent in self.accepted:
            asset = self.stored.get(sent.object_name)
            if asset and sent.received_at:
                stored_at = datetime.fromisoformat(asset["provenance"]["stored_at"])
                values.append((stored_at - sent.received_at).total_seconds() * 1000)
        return sorted(values)

    def percentiles(self) -> dict[str, float]:
        values = self.latencies_ms()
        if not values:
            return {}
        quantiles = statistics.quantiles(values, n=100, method="inclusive")
        return {"p50": quantiles[49], "p95": quantiles[94], "max": values[-1]}

    @property
    def ok(self) -> bool:
        return (
            bool(self.sent)
            and len(self.accepted) == len(self.sent)
            and not self.mismatches
            and len(self.stored) == len(self.accepted)
            and self.confirmed == len(self.accepted)
        )


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    adapter = requests.adapters.HTTPAdapter(pool_connections=32, pool_maxsize=32)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class Unreachable(Exception):
    """An endpoint did not answer at all; the message names it and what to check."""


def probe(name: str, url: str, timeout: float = 5.0) -> None:
    """Fail within `timeout` seconds, naming `url`, when nothing answers there (any HTTP
    answer will do): without it an unreachable API cost minutes of retries, then `HTTP 0`."""
    try:
        _session().get(url, timeout=timeout)
    except requests.Timeout:
        raise Unreachable(
            f"{name} at {url} did not answer within {timeout:.0f}s: check the URL and that "
            "it runs and is reachable from here"
        ) from None
    except requests.RequestException as error:
        # The socket's own words ("[Errno 111] Connection refused"), not urllib3's wrapping.
        found = re.search(r"\[Errno -?\d+\] [^'\")]+", str(error))
        why = found.group(0) if found else type(error).__name__
        raise Unreachable(
            f"cannot reach {name} at {url} ({why}): check the URL and that it runs"
        ) from None


def _silent(_: int) -> None:
    pass


def post_all(
    api_url: str, bodies: list[dict[str, Any]], concurrency: int = 16, progress: Progress = _silent
) -> list[Sent]:
    """POST every body with its own Idempotency-Key; retries (same key) on 503 and errors."""
    session = _session()
    sent = [Sent(body=body, key=str(uuid.uuid4())) for body in bodies]
    lock = threading.Lock()

    def post(item: Sent) -> None:
        for attempt in range(6):
            try:
                response = session.post(
                    f"{api_url}/v1/submissions",
                    json=item.body,
                    headers={"Idempotency-Key": item.key},
                    timeout=30,
                )
            except requests.RequestException as error:
                item.error = str(error)
                time.sleep(0.2 * 2**attempt)
                continue
            item.status = response.status_code
            if response.status_code == 202:
                body = response.json()
                item.id, item.object_name = body["id"], body["object_name"]
                item.sha256 = body["sha256"]
                item.received_at = datetime.fromisoformat(body["received_at"])
                break
            item.error = response.text[:300]
            if response.status_code != 503:
                break
            time.sleep(float(response.headers.get("Retry-After", "1")))
        with lock:
            progress(1)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(post, sent))
    return sent


def wait_for_objects(
    list_objects: Callable[[], Iterator[tuple[str, Callable[[], bytes]]]],
    report: Report,
    timeout: float,
    progress: Progress = _silent,
    healthy: Callable[[], bool] = lambda: True,
) -> None:
    """Poll the bucket until every accepted submission is an object, the timeout, or until
    `healthy` says waiting is pointless."""
    wanted = {sent.object_name for sent in report.accepted}
    deadline = time.monotonic() + timeout

    def fetch(item: tuple[str, Callable[[], bytes]]) -> tuple[str, dict[str, Any]]:
        return item[0], json.loads(item[1]())

    with ThreadPoolExecutor(8) as pool:  # one download is a round trip: overlap them
        while wanted - report.stored.keys() and time.monotonic() < deadline and healthy():
            new = [(n, d) for n, d in list_objects() if n in wanted and n not in report.stored]
            for name, asset in pool.map(fetch, new):
                report.stored[name] = asset
                progress(1)
            time.sleep(0.2)


def follow_statuses(
    api_url: str, report: Report, timeout: float = 30.0, progress: Progress = _silent
) -> None:
    """Read every accepted submission's status from the API until each says `stored` (as
    GCP's receipt confirmed it) or the timeout."""
    session = _session()
    deadline = time.monotonic() + timeout

    def read(sent: Sent) -> tuple[str, dict[str, Any]]:
        response = session.get(f"{api_url}/v1/submissions/{sent.id}", timeout=10)
        body = response.json() if response.status_code == 200 else {}
        return sent.id, body or {"status": f"HTTP {response.status_code}"}

    with ThreadPoolExecutor(8) as pool:  # one status is a round trip: overlap them
        while True:
            waiting = [s for s in report.accepted
                       if report.statuses.get(s.id, {}).get("status") != "stored"]  # fmt: skip
            for sid, body in pool.map(read, waiting):
                report.statuses[sid] = body
                if body.get("status") == "stored":
                    progress(1)
            if report.confirmed == len(report.accepted) or time.monotonic() > deadline:
                return
            time.sleep(0.25)


def aws_side(shown: dict[str, Any]) -> str:
    """What the AWS side says of a submission (its GET body), in one clause: status,
    attempts, redeliveries and the last error. A row still `accepted` with attempts and an
    error is a delivery that kept failing; `forwarded` without a receipt is GCP's to
    explain; no row at all is a loss."""
    if not shown or "id" not in shown:
        return f"AWS: {shown.get('status', 'no status read')}"
    parts = [f"AWS: {shown.get('status')}", f"attempts {shown.get('attempts', 0)}"]
    if shown.get("redeliveries"):
        parts.append(f"redeliveries {shown['redeliveries']}")
    parts.append(f"last error: {shown.get('last_error') or 'none'}")
    return ", ".join(parts)


def compare(report: Report) -> None:
    """Each stored object must hold exactly what was sent, with its checksum verified."""
    for sent in report.sent:
        if sent.status != 202:
            report.mismatches.append(f"not accepted: HTTP {sent.status} {sent.error}")
            continue
        asset = report.stored.get(sent.object_name)
        shown = report.statuses.get(sent.id, {})
        if asset is None:
            report.mismatches.append(
                f"{sent.id}: not stored, no object {sent.object_name} ({aws_side(shown)})"
            )
            continue
        expected = SubmissionIn.model_validate(sent.body)
        problems = []
        if asset["submission_id"] != sent.id:
            problems.append("submission id differs")
        if asset["type"] != expected.type or asset["data"] != expected.data:
            problems.append("content differs from what was sent")
        if (
            asset["sha256"] != sha256_hex(expected.canonical_json())
            or not asset["checksum_verified"]
        ):
            problems.append("checksum differs or was not verified")
        if shown.get("status") != "stored":
            problems.append(f"not confirmed stored ({aws_side(shown)})")
        elif shown.get("object_uri", "").rsplit("/", 1)[-1] != sent.object_name.rsplit("/", 1)[-1]:
            problems.append("AWS records another object")
        if problems:
            report.mismatches.append(f"{sent.id}: {'; '.join(problems)}")
