"""One retry policy for the whole runtime: exponential back-off with full jitter, configured per use.

Modelled on kazoo's `KazooRetry` (which the ZooKeeper session itself uses): a `RetryPolicy` says how long to
wait before attempt n, how many attempts and how long in total; a `Backoff` is one running sequence of waits
that the owner resets when the world changed (Mesos restarts an agent's registration back-off, [0, 1 s], for
every newly detected leader). `retry()` runs an async operation under a policy.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)

Result = TypeVar("Result")


class RetryFailed(Exception):
    """The policy ran out of attempts or time; `__cause__` is the last error."""


@dataclass(frozen=True)
class RetryPolicy:
    """How to wait between attempts.

    The wait before retry n (n = 0 for the first retry) is `initial * factor**n`, at most `maximum`; with
    `jitter` it is drawn uniformly from [0, that] ("full jitter": clients that failed together do not retry
    together). `max_tries` (None: unbounded) and `deadline` (seconds from the first attempt, None: unbounded)
    end the retrying.
    """

    initial: float = 0.1
    maximum: float = 15.0
    factor: float = 2.0
    jitter: bool = True
    max_tries: int | None = None
    deadline: float | None = None

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError(f"invalid retry policy {self}: need 0 <= initial <= maximum and factor >= 1")

    def delay(self, retry_number: int) -> float:
        """The wait before retry `retry_number` (0-based)."""
        # Cap the exponent so that a long outage cannot overflow the float.
        ceiling = min(self.maximum, self.initial * self.factor ** min(retry_number, 64))
        return random.uniform(0, ceiling) if self.jitter else ceiling

    def backoff(self) -> Backoff:
        return Backoff(self)


class Backoff:
    """One sequence of waits under a policy; `reset()` starts it over (after a success or a new leader)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.failures = 0
        self.started = time.monotonic()

    def reset(self) -> None:
        self.failures = 0
        self.started = time.monotonic()

    def next_delay(self) -> float:
        """Count one more failure and return how long to wait before the next attempt."""
        delay = self.policy.delay(self.failures)
        self.failures += 1
        return delay

    def exhausted(self) -> bool:
        """Whether the policy allows no further attempt (by count or by deadline)."""
        policy = self.policy
        if policy.max_tries is not None and self.failures >= policy.max_tries:
            return True
        return policy.deadline is not None and time.monotonic() - self.started >= policy.deadline

    async def wait(self) -> None:
        await asyncio.sleep(self.next_delay())


async def retry(
    operation: Callable[[], Awaitable[Result]],
    policy: RetryPolicy,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    what: str = "operation",
) -> Result:
    """Await `operation()` until it succeeds, waiting by `policy` after each error of a `retry_on` type.

    Raises `RetryFailed` (from the last error) when the policy is exhausted; other errors propagate at once.
    """
    backoff = policy.backoff()
    while True:
        try:
            return await operation()
        except retry_on as error:
            delay = backoff.next_delay()
            if backoff.exhausted():
                raise RetryFailed(f"{what} failed after {backoff.failures} attempts: {error}") from error
            log.debug("%s failed (%s); retrying in %.2fs", what, error, delay)
            await asyncio.sleep(delay)
