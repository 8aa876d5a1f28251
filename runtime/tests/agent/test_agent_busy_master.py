"""An agent turned away by a master at its limits waits as long as the master asks (issue 16).

A master near its file-descriptor limit refuses new agent streams with 503 and Retry-After (master/limits.py).
Agents that retried such a refusal every second, as they retry a master that knows no leader, would keep a
master full of refused connections at exactly the scale where it has none to spare. The master here is the
fake one: making the real master refuse needs it to run out of descriptors first, which
tests/master/test_descriptor_limit.py does; what is tested here is the agent's side, the real agent process.
"""

# ruff: noqa: F811 - pytest fixtures imported from agent_testing and agent_fake_master are redefined as parameters

from __future__ import annotations

import itertools

from agent_fake_master import master  # noqa: F401 - a fixture
from agent_testing import home  # noqa: F401 - a fixture

from harness.http import get_json
from harness.waiting import wait_for
from mesolite.agent.registration import retry_after_seconds

RETRY_AFTER = 3


def test_an_agent_refused_with_retry_after_waits_that_long_then_registers(launcher, home, master):
    master.busy_retry_after = RETRY_AFTER
    agent = launcher.start("agent", *home.arguments(master.address()), port=home.port)
    wait_for(lambda: len(master.subscription_times) >= 3, 30, what="three refused subscriptions")

    times = master.subscription_times[:3]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    # Before, the agent treated the 503 as "no leader" and came back within a second, whatever it was told.
    assert min(gaps) >= RETRY_AFTER, gaps

    master.busy_retry_after = None
    wait_for(lambda: get_json(agent.url("/metrics/snapshot"))["slave/registered"] == 1.0, 30, what="registration")


def test_retry_after_is_read_as_seconds_and_an_unreadable_or_absurd_one_is_ignored():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("") is None
    # The HTTP-date form: the master never sends it; such a 503 is treated as "no leader".
    assert retry_after_seconds("Wed, 21 Oct 2026 07:28:00 GMT") is None
    assert retry_after_seconds("-1") is None
    assert retry_after_seconds("86400") is None
