"""Timestamps in Marathon's wire form (`2015-09-17T09:32:42.598Z`), which also serve as app versions."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def format_timestamp(epoch_seconds: float) -> str:
    """`2015-09-17T09:32:42.598Z`: UTC, milliseconds, a `Z` (strict clients reject anything else)."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def now_timestamp() -> str:
    return format_timestamp(time.time())


class VersionClock:
    """Hands out strictly increasing version timestamps, even for changes within one millisecond."""

    def __init__(self) -> None:
        self._last_millis = 0

    def next(self) -> str:
        millis = max(int(time.time() * 1000), self._last_millis + 1)
        self._last_millis = millis
        return format_timestamp(millis / 1000)
