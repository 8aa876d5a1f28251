"""Keeps the records fresh: follows the leading master and reads its `/master/state` every `refreshSeconds`.

Mesos-DNS reads the state every 60 seconds; here the default is every second, and at once when ZooKeeper names
a new leader, so that a task resolves about a second after TASK_RUNNING and is gone about a second after it
ends. A read whose body did not change since the last one (or a 304 to `If-None-Match`, for masters that send
an ETag) costs no regeneration.

Where the leader comes from: with `zk`, ZooKeeper's leading member (MasterInfo); with `masters` only, the first
of them that answers, then the master its state names as `leader`. When the state cannot be read, the last
records are kept (Mesos-DNS serves stale records rather than none) and the failure is logged once per outage.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import ssl
from collections.abc import Callable
from typing import Any

import aiohttp

from mesolite.dns.records import NamingSettings, RecordSet, generate_records, pid_address
from mesolite.retry import RetryPolicy
from mesolite.security.credentials import Credential
from mesolite.zookeeper.detector import master_address, started_detector
from mesolite.zookeeper.url import parse_zookeeper_url

log = logging.getLogger(__name__)

STATE_PATHS = ("/master/state", "/state")
# A master that cannot be read is retried at the refresh interval; no faster than this.
MINIMUM_RETRY = RetryPolicy(initial=0.5, maximum=5.0)


def basic_authorization(credential: Credential) -> str:
    token = base64.b64encode(f"{credential.principal}:{credential.secret}".encode()).decode()
    return f"Basic {token}"


class StateFollower:
    """Calls `on_records(records)` whenever the records generated from the leader's state change."""

    def __init__(
        self,
        *,
        zk: str,
        masters: list[str],
        naming: NamingSettings,
        on_records: Callable[[RecordSet], None],
        refresh_seconds: float = 1.0,
        state_timeout: float = 300.0,
        https: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        credential: Credential | None = None,
    ) -> None:
        self.zk = parse_zookeeper_url(zk) if zk else None
        self.masters = masters
        self.naming = naming
        self.on_records = on_records
        self.refresh_seconds = refresh_seconds
        self.state_timeout = state_timeout
        self.https = https
        self.ssl_context = ssl_context
        # HTTP Basic, as Mesos's `--authenticate_http_readonly` expects it from Mesos-DNS (`mesosAuthentication`).
        self.authorization = basic_authorization(credential) if credential else None
        self.leader: str | None = None  # `scheme://ip:port` of the master being read
        self.last_refresh: float | None = None  # loop time of the last successful read
        self._leader_changed = asyncio.Event()
        self._digest: bytes | None = None
        self._etag: str | None = None
        self._failing = False

    # --- running -------------------------------------------------------------------------------------------

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(ssl=self.ssl_context if self.ssl_context is not None else True)
        timeout = aiohttp.ClientTimeout(total=self.state_timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            tasks = [asyncio.create_task(self._poll(session), name="dns-state-poll")]
            if self.zk is not None:
                tasks.append(asyncio.create_task(self._follow_zookeeper(), name="dns-leader-detection"))
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    def _url(self, address: str, scheme: str | None = None) -> str:
        return f"{scheme or ('https' if self.https else 'http')}://{address}"

    async def _follow_zookeeper(self) -> None:
        assert self.zk is not None
        detector = await started_detector(self.zk)
        try:
            async for info in detector.changes():
                if info is None:
                    log.warning("no leading master under %s: keeping the last records", self.zk)
                    continue
                scheme = "https" if (info.get("address") or {}).get("scheme") == "https" else None
                self.leader = self._url(master_address(info), scheme)
                log.info("reading the state of the leading master %s", self.leader)
                self._leader_changed.set()
        finally:
            with contextlib.suppress(Exception):
                await detector.stop()

    async def _poll(self, session: aiohttp.ClientSession) -> None:
        backoff = MINIMUM_RETRY.backoff()
        while True:
            self._leader_changed.clear()
            ok = await self.refresh(session)
            delay = self.refresh_seconds if ok else max(self.refresh_seconds, backoff.next_delay())
            if ok:
                backoff.reset()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._leader_changed.wait()

    # --- one refresh -----------------------------------------------------------------------------------------

    async def refresh(self, session: aiohttp.ClientSession) -> bool:
        """Read the leader's state once and regenerate the records if it changed; False when it could not."""
        candidates = [self.leader] if self.leader else []
        if self.zk is None or not candidates:
            candidates += [self._url(master) for master in self.masters if self._url(master) not in candidates]
        for url in candidates:
            try:
                body = await self._read_state(session, url)
                if body is not None:
                    self._apply(body, url)
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as error:
                self._digest = None
                if not self._failing:
                    log.warning("cannot read the state of %s (keeping the last records): %s", url, error)
                continue
            if self._failing:
                log.info("reading the state of %s again", url)
            self._failing = False
            self.last_refresh = asyncio.get_running_loop().time()
            return True
        self._failing = True
        return False

    async def _read_state(self, session: aiohttp.ClientSession, url: str) -> bytes | None:
        """The state's body, or None when it is unchanged."""
        headers = {"Accept": "application/json"}
        if self._etag:
            headers["If-None-Match"] = self._etag
        if self.authorization:
            headers["Authorization"] = self.authorization
        last_error: Exception | None = None
        for path in STATE_PATHS:
            async with session.get(url + path, headers=headers) as response:
                if response.status == 404:
                    last_error = ValueError(f"{url}{path}: 404")
                    continue
                if response.status == 304:
                    return None
                if response.status != 200:
                    raise ValueError(f"{url}{path} answered {response.status}")
                body = await response.read()
                self._etag = response.headers.get("ETag")
                digest = hashlib.sha256(body).digest()
                if digest == self._digest:
                    return None
                self._digest = digest
                return body
        raise last_error or ValueError(f"{url}: no state endpoint")

    def _apply(self, body: bytes, url: str) -> None:
        state: Any = json.loads(body)
        if not isinstance(state, dict):
            raise ValueError(f"{url}: the state is not a JSON object")
        leader = pid_address(str(state.get("leader") or ""))
        if self.zk is None and leader is not None:
            # Reading a standby (`masters` mode): the next read goes to the leader it names.
            self.leader = self._url(f"{leader[0]}:{leader[1]}")
        if not state.get("leader"):
            log.warning("%s knows no leader: keeping the last records", url)
            self._digest = None
            return
        self.on_records(generate_records(state, self.naming))
