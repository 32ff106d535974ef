"""The prober's target health follows the ALB's thresholds: healthy after the first pass,
unhealthy only after consecutive failures, healthy again only after consecutive passes."""

from __future__ import annotations

from local_stack.probe import HEALTHY_THRESHOLD, UNHEALTHY_THRESHOLD, TargetHealth


def after(*results: bool) -> TargetHealth:
    target = TargetHealth()
    for passed in results:
        target.record(passed)
    return target


def test_a_new_target_is_healthy_after_its_first_pass_and_not_before():
    assert after(False, False, False).state == "initial"
    assert after(False, True).healthy


def test_one_slow_check_does_not_make_a_target_unhealthy():
    assert after(True, False, True, False, True).healthy
    assert after(True, *[False] * UNHEALTHY_THRESHOLD).state == "unhealthy"


def test_an_unhealthy_target_needs_consecutive_passes_to_return():
    down = [True, *[False] * UNHEALTHY_THRESHOLD]
    assert not after(*down, *[True] * (HEALTHY_THRESHOLD - 1)).healthy
    assert not after(*down, *[True] * (HEALTHY_THRESHOLD - 1), False, True).healthy
    assert after(*down, *[True] * HEALTHY_THRESHOLD).healthy
