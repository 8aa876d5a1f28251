"""Waiting for a condition, with a bound: the one way tests wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail the test with `what` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


async def eventually(predicate: Callable[[], object], within: float = 15.0, what: str = "condition") -> object:
    """Await until `predicate()` is truthy, keeping the event loop running."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out after {within:g}s waiting for {what}")
