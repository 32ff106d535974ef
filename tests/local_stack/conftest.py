"""Google's system tests start in the background as soon as collection knows they will run,
and their check runs last, so their cases (which mostly wait) overlap the whole session."""

from __future__ import annotations

import pytest

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
