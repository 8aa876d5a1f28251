"""Fixtures of the load balancer tests: the stand-in Marathon and real backends (see lb_testing)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from lb_testing import Backend, StandInMarathon


@pytest.fixture
async def marathon() -> AsyncIterator[StandInMarathon]:
    stand_in = StandInMarathon()
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture
async def backends() -> AsyncIterator[Callable[[str], Awaitable[Backend]]]:
    """Start real HTTP backends on loopback ports: `await backends("a")`."""
    started: list[Backend] = []

    async def start(name: str) -> Backend:
        backend = Backend(name)
        await backend.start()
        started.append(backend)
        return backend

    yield start
    for backend in started:
        await backend.stop()
