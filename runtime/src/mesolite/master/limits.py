"""The master's file-descriptor budget: refuse new long-lived streams before the process runs out of descriptors.

Every agent holds a connection (its event stream, usually a second one for its calls), every framework one.
At the process's RLIMIT_NOFILE, accept() fails with EMFILE and, worse, kazoo can no longer open a socket or a
selector: the ZooKeeper session is lost and with it leadership and every agent (issue 16 saw this at ~18,000
agents on a 20,000 limit). So a `reserve` of descriptors is kept for what the master cannot do without
(ZooKeeper and the registry, its logs, operator requests, the calls of agents already admitted), and once the
open descriptors reach `limit - reserve`, new agent subscriptions and framework subscriptions are answered
`503` with `Retry-After` (and the connection closed) instead of being given a stream. Existing streams and
short calls are never refused: agents already admitted keep working.

Counting: on Linux >= 6.2 `stat("/proc/self/fd").st_size` is the number of open descriptors, at the cost of one
system call (~10-40 us, independent of the count), cheap enough for every subscription. Older kernels report 0
there; the directory is then listed (~2 ms per 1,000 descriptors), at most once per `FALLBACK_SAMPLE_SECONDS`.
Counting the kernel's table rather than our own connections also sees the second connection of each agent,
kazoo's selectors and whatever else holds descriptors.
"""

from __future__ import annotations

import logging
import os
import random
import resource
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

FD_DIRECTORY = "/proc/self/fd"
# Listing the fd directory costs milliseconds at tens of thousands of descriptors: sample, do not list per call.
FALLBACK_SAMPLE_SECONDS = 1.0
# A refused client is asked to come back after a spread of delays, so that a crowd refused together does not
# return together (the agent retries on its own schedule too; Retry-After is for any client that reads it).
RETRY_AFTER_SECONDS = (5, 15)
# At most one warning this often while refusing (thousands of agents may be refused per second).
REFUSAL_LOG_INTERVAL = 10.0
# The default reserve: a tenth of the limit, within these bounds. 64 covers ZooKeeper (a socket, kazoo's
# selectors and wake-up pipes), the log and a handful of operator requests on a tiny limit; 4,096 concurrent
# operator requests and agent calls are plenty on a large one.
MIN_DEFAULT_RESERVE = 64
MAX_DEFAULT_RESERVE = 4096


def default_reserve(limit: int) -> int:
    return max(MIN_DEFAULT_RESERVE, min(limit // 10, MAX_DEFAULT_RESERVE))


def raise_soft_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard one (systemd's default soft limit is 1,024, whatever the hard
    limit); answers (soft limit before, soft limit now)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == hard:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as error:
        log.warning("could not raise the file descriptor limit from %d to %d: %s", soft, hard, error)
        return soft, soft
    return soft, hard


def count_open_descriptors() -> int | None:
    """Descriptors open in this process right now (None when /proc is not there)."""
    try:
        size = os.stat(FD_DIRECTORY).st_size
        return size if size > 0 else len(os.listdir(FD_DIRECTORY))
    except OSError:
        return None


@dataclass
class Refusal:
    """Why a new stream is refused, and when to come back."""

    message: str
    retry_after: int


class DescriptorBudget:
    """How many descriptors new streams may take: `limit - reserve`, checked against the open count."""

    def __init__(self, limit: int, reserve: int) -> None:
        self.limit = limit
        self.reserve = min(reserve, limit)
        self.agent_streams_refused = 0
        self.framework_subscriptions_refused = 0
        self._fast_count = _has_fast_count()
        self._sampled_count: int | None = None
        self._sampled_at = float("-inf")
        self._last_warning = float("-inf")
        self._refused_since_warning = 0

    @classmethod
    def for_this_process(cls, reserve: int | None) -> DescriptorBudget:
        """The budget under this process's limit (raised to the hard limit first), logged for the operator."""
        before, limit = raise_soft_limit()
        budget = cls(limit, default_reserve(limit) if reserve is None else reserve)
        raised = f" (raised from {before})" if limit != before else ""
        log.info(
            "file descriptors: limit %d%s, %d kept in reserve: new agent and framework streams are refused "
            "(503) beyond %d open",
            limit,
            raised,
            budget.reserve,
            budget.threshold,
        )
        return budget

    @property
    def threshold(self) -> int:
        return self.limit - self.reserve

    def open_descriptors(self) -> int | None:
        if self._fast_count:
            return count_open_descriptors()
        now = time.monotonic()
        if now - self._sampled_at >= FALLBACK_SAMPLE_SECONDS:
            self._sampled_count, self._sampled_at = count_open_descriptors(), now
        return self._sampled_count

    def refuse_new_stream(self, kind: str) -> Refusal | None:
        """A refusal when a new stream of `kind` ("agent" or "framework") would eat into the reserve, else None."""
        open_now = self.open_descriptors()
        if open_now is None or open_now < self.threshold:
            return None
        if kind == "agent":
            self.agent_streams_refused += 1
        else:
            self.framework_subscriptions_refused += 1
        self._refused_since_warning += 1
        now = time.monotonic()
        if now - self._last_warning >= REFUSAL_LOG_INTERVAL:
            log.warning(
                "refusing new agent and framework streams: %d file descriptors open, limit %d with %d in reserve "
                "(%d refused since the last message; raise LimitNOFILE / ulimit -n to admit more)",
                open_now,
                self.limit,
                self.reserve,
                self._refused_since_warning,
            )
            self._last_warning, self._refused_since_warning = now, 0
        return Refusal(
            f"Service Unavailable: this master has {open_now} of its {self.limit} file descriptors open and keeps "
            f"{self.reserve} in reserve; try again later",
            random.randint(*RETRY_AFTER_SECONDS),
        )

    def metrics(self) -> dict[str, float]:
        open_now = self.open_descriptors()
        metrics = {
            "master/agent_streams_refused": float(self.agent_streams_refused),
            "master/framework_subscriptions_refused": float(self.framework_subscriptions_refused),
            "system/fds_max": float(self.limit),
            "system/fds_reserved": float(self.reserve),
        }
        if open_now is not None:
            metrics["system/fds_open"] = float(open_now)
        return metrics


def _has_fast_count() -> bool:
    """Whether the kernel reports the open descriptors as the size of /proc/self/fd (Linux >= 6.2)."""
    try:
        return os.stat(FD_DIRECTORY).st_size > 0
    except OSError:
        return False
