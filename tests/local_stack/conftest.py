"""The Pub/Sub emulators the conformance modules share (ours, and Google's where gcloud has
it), one of each per session.

Google's system tests start in the background as soon as collection knows they will run,
and their check runs last, so their cases (which mostly wait) overlap the whole session."""

from __future__ import annotations

import os
from dataclasses import dataclass
from unittest import mock

import pytest
from google.cloud import pubsub_v1

from local_stack.pubsub import PubSubEmulator
from tests.local_stack import googles_emulator
from tests.local_stack.google_suite import Background

SUITE_MODULE = "test_googles_system_tests.py"
BACKGROUND = pytest.StashKey[Background]()


def _suite_items(items: list[pytest.Item]) -> list[pytest.Item]:
    return [item for item in items if item.path.name == SUITE_MODULE]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    suite = _suite_items(items)
    if suite:
        items[:] = [item for item in items if item not in suite] + suite


def pytest_collection_finish(session: pytest.Session) -> None:
    suite = _suite_items(session.items)
    if suite:
        from tests.local_stack.test_googles_system_tests import background

        session.config.stash[BACKGROUND] = background().start()


def pytest_sessionfinish(session: pytest.Session) -> None:
    if background := session.config.stash.get(BACKGROUND, None):
        background.stop()


@dataclass(frozen=True)
class Emulator:
    kind: str  # "ours" or "google"
    host: str

    def only_ours(self, reason: str) -> None:
        """Skips a case that Google's emulator does not share with the real service or us."""
        if self.kind != "ours":
            pytest.skip(f"ours only: {reason}")


@pytest.fixture(scope="session", params=["ours", "google"])
def emulator(request, tmp_path_factory):
    if request.param == "ours":
        ours = PubSubEmulator()
        port = ours.start()
        try:
            yield Emulator("ours", f"127.0.0.1:{port}")
        finally:
            ours.stop()
        return
    try:
        host, process = googles_emulator.start(tmp_path_factory.mktemp("pubsub-google"))
    except googles_emulator.Unavailable as why:
        pytest.skip(str(why))
    try:
        yield Emulator("google", host)
    finally:
        googles_emulator.stop(process)


@pytest.fixture(scope="session")
def clients(emulator):
    with mock.patch.dict(os.environ, {"PUBSUB_EMULATOR_HOST": emulator.host}):
        publisher = pubsub_v1.PublisherClient(
            publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
        )
        subscriber = pubsub_v1.SubscriberClient()
    try:
        yield publisher, subscriber
    finally:
        publisher.stop()
        subscriber.close()
