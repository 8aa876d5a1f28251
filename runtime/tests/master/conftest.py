"""Fixtures of the master's tests. Each test module defines `master` (a real master with the flags it needs);
these build on it."""

from __future__ import annotations

import aiohttp
import pytest
from master_helpers import FakeAgent, Scheduler


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def cluster(master, http):
    """The module's master with one fake agent and one subscribed framework (holding the agent's first offer)."""
    agent = FakeAgent(http, master.url())
    await agent.subscribe()
    scheduler = Scheduler(http, master.url())
    await scheduler.subscribe()
    yield master, agent, scheduler
    await scheduler.close()
    await agent.disconnect()
