"""The one retry policy: delays grow, are capped, jitter stays within bounds, and retry() stops when told."""

from __future__ import annotations

import pytest

from mesolite.retry import RetryFailed, RetryPolicy, retry


def test_delays_grow_by_the_factor_and_stop_at_the_maximum():
    policy = RetryPolicy(initial=0.5, maximum=4.0, factor=2.0, jitter=False)
    assert [policy.delay(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_a_long_outage_does_not_overflow():
    assert RetryPolicy(initial=1.0, maximum=60.0, jitter=False).delay(10_000) == 60.0


def test_full_jitter_stays_between_zero_and_the_ceiling():
    policy = RetryPolicy(initial=1.0, maximum=8.0)
    delays = [policy.delay(2) for _ in range(500)]
    assert all(0 <= delay <= 4.0 for delay in delays)
    assert max(delays) > 2.0 > min(delays)  # actually spread, not a constant


def test_reset_starts_the_sequence_over():
    backoff = RetryPolicy(initial=1.0, maximum=100.0, jitter=False).backoff()
    assert [backoff.next_delay() for _ in range(3)] == [1.0, 2.0, 4.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0


@pytest.mark.parametrize("arguments", [{"initial": -1}, {"initial": 2, "maximum": 1}, {"factor": 0.5}])
def test_nonsense_policies_are_refused(arguments):
    with pytest.raises(ValueError):
        RetryPolicy(**arguments)


async def test_retry_returns_the_first_success():
    attempts = []

    async def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("not yet")
        return "done"

    assert await retry(flaky, RetryPolicy(initial=0.001, maximum=0.001)) == "done"
    assert len(attempts) == 3


async def test_retry_gives_up_after_max_tries_with_the_last_error():
    async def broken():
        raise ConnectionError("down")

    with pytest.raises(RetryFailed) as raised:
        await retry(broken, RetryPolicy(initial=0.001, maximum=0.001, max_tries=3), what="ping")
    assert "ping failed after 3 attempts" in str(raised.value)
    assert isinstance(raised.value.__cause__, ConnectionError)


async def test_errors_outside_retry_on_propagate_at_once():
    attempts = []

    async def wrong():
        attempts.append(1)
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await retry(wrong, RetryPolicy(initial=0.001), retry_on=(ConnectionError,))
    assert len(attempts) == 1
