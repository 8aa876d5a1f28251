"""The agent's link to the leading master: detection, the subscribe stream, calls, and re-registration.

The agent follows the leader through ZooKeeper (or talks to a fixed `host:port`), POSTs
`/internal/agent/subscribe` (REGISTER, or REREGISTER with its id and tasks) and reads the RecordIO
event stream that answers. When the stream ends, the leader changes, or the master falls silent for
longer than its ping timeout, the agent subscribes again (with back-off), always with the same id.

With `--credential` every request carries `Authorization: Basic` (a master with --authenticate_agents checks
it); a 401 is logged naming the principal and retried with the same back-off as any other refusal. The master
is reached with https when its MasterInfo (or an https:// `--master`) says so, or when this agent has TLS
enabled (LIBPROCESS_SSL_ENABLED: libprocess then speaks TLS to every peer), verified with the cluster's CA.

The back-off is Mesos's: every newly detected leader restarts it, so the first attempt goes after
[0, --registration_backoff_factor] and each failure doubles that bound (up to 15 s). Failures against
an old leader say nothing about the new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from mesolite.http_input import JsonInputError, decode_json
from mesolite.protocol.recordio import read_records
from mesolite.retry import Backoff, RetryPolicy
from mesolite.security.authentication import basic_authorization
from mesolite.security.credentials import Credential
from mesolite.security.tls import TlsSettings
from mesolite.zookeeper.detector import MasterLocation, leader_addresses

log = logging.getLogger(__name__)

SUBSCRIBE_PATH = "/internal/agent/subscribe"
CALL_PATH = "/internal/agent/call"
MAX_REDIRECTS = 3
MAX_BACKOFF_SECONDS = 15.0
MIN_BACKOFF_SECONDS = 0.01
# A master that answers 503 "no leading master is known" waits for ZooKeeper just as this agent does, and
# leads again (or names the leader) as soon as its session is back. That is no change our own detector
# reports when the same master stays elected, so such a master is asked again at least this often rather
# than after a back-off grown through the outage.
NO_LEADER_RETRY_SECONDS = 1.0
# A master at its limits says when to come back; a longer wait than this is not believed.
MAX_RETRY_AFTER_SECONDS = 300.0
# Before REGISTERED tells the real interval: how long a silent stream is trusted.
DEFAULT_SILENCE_TIMEOUT = 75.0
# A silent stream is dropped after this many missed pings (the master's default max_agent_ping_timeouts).
MISSED_PINGS_BEFORE_RECONNECT = 5


class RegistrationRefused(Exception):
    """The master refused this agent (403): it was removed, or its resources changed."""


class CredentialRefused(Exception):
    """The master does not accept this agent's credential, or wants one it was not given (401)."""


class NoLeader(Exception):
    """The master we reached does not lead and knows no leader (503)."""


class MasterBusy(Exception):
    """The master is at its limits (503 with Retry-After, e.g. out of file descriptors): ask again no sooner."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class SubscriptionEnd:
    """How a subscription attempt ended, for the wait before the next one."""

    no_leader: bool = False  # the master may lead again any moment: ask again soon
    retry_after: float | None = None  # the master asked for this many seconds of quiet


def retry_after_seconds(header: str | None) -> float | None:
    """Retry-After's delay-seconds form (the only one our master sends); None when absent or not a number."""
    try:
        seconds = float(header) if header else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds <= MAX_RETRY_AFTER_SECONDS else None


@dataclass
class LinkEvents:
    """What the link tells the agent."""

    subscribe_body: Callable[[], dict]  # REGISTER / REREGISTER, built fresh for every attempt
    on_registered: Callable[[dict, str], Awaitable[None]]  # (registered body, master address)
    on_event: Callable[[dict], Awaitable[None]]
    on_disconnected: Callable[[], Awaitable[None]]
    on_refused: Callable[[str], Awaitable[None]]


class MasterLink:
    def __init__(
        self,
        master: MasterLocation,
        session: aiohttp.ClientSession,
        events: LinkEvents,
        backoff_factor: float = 1.0,
        credential: Credential | None = None,
        tls: TlsSettings | None = None,
    ):
        self.master = master
        self.session = session
        self.events = events
        self.backoff_factor = backoff_factor
        self.credential = credential
        self.tls = tls or TlsSettings()
        self._client_context: ssl.SSLContext | None = None
        self.leader: str | None = None  # as detected: scheme://host:port
        self.address: str | None = None  # the master our stream is connected to (scheme://host:port)
        self.registered = False
        self.silence_timeout = DEFAULT_SILENCE_TIMEOUT
        self.ping_interval = DEFAULT_SILENCE_TIMEOUT / MISSED_PINGS_BEFORE_RECONNECT
        self._last_accepted_call: float | None = None  # loop time of the last call the master accepted
        self._leader_changed = asyncio.Event()
        self._leader_known = asyncio.Event()

    async def run(self) -> None:
        follower = asyncio.create_task(self._follow_leader())
        backoff = self.registration_policy.backoff()
        try:
            while True:
                await self._leader_known.wait()
                if self._leader_changed.is_set():
                    # A new leader: start the back-off over, and wait [0, factor] first as Mesos does, so that
                    # a cluster's agents do not all hit the new master in the same instant.
                    self._leader_changed.clear()
                    backoff.reset()
                    if await self._leader_changes_within(backoff.next_delay()):
                        continue
                leader = self.leader
                if leader is None:
                    await self._leader_changed.wait()
                    continue
                ended = await self._try_subscription(leader, backoff)
                if self._leader_changed.is_set():
                    continue
                await self._leader_changes_within(self._wait_after(ended, backoff.next_delay()))
        finally:
            follower.cancel()

    @property
    def registration_policy(self) -> RetryPolicy:
        # A factor of 0 would retry a refusing master in a busy loop: 10 ms is the least wait.
        initial = max(self.backoff_factor, MIN_BACKOFF_SECONDS)
        return RetryPolicy(initial=initial, maximum=max(initial, MAX_BACKOFF_SECONDS))

    @staticmethod
    def _wait_after(ended: SubscriptionEnd, backoff_delay: float) -> float:
        if ended.retry_after is not None:
            # Spread over half the master's delay again, so that the agents it turned away do not all come
            # back in the same second.
            return max(backoff_delay, ended.retry_after * random.uniform(1.0, 1.5))
        return min(backoff_delay, NO_LEADER_RETRY_SECONDS) if ended.no_leader else backoff_delay

    async def _try_subscription(self, leader: str, backoff: Backoff) -> SubscriptionEnd:
        """One subscription with `leader`, until its stream ends; a registration restarts the back-off."""
        try:
            await self._subscribe(leader)
        except NoLeader as error:
            log.info("no subscription with master %s: it knows no leader (%s)", leader, error)
            return SubscriptionEnd(no_leader=True)
        except MasterBusy as busy:
            log.warning("master %s is at its limits; next attempt in %g s or more: %s", leader, busy.retry_after, busy)
            return SubscriptionEnd(retry_after=busy.retry_after)
        except RegistrationRefused as refusal:
            log.warning("master %s refused this agent: %s", leader, refusal)
            await self.events.on_refused(str(refusal))
        except CredentialRefused as refusal:
            log.error("no subscription with master %s: %s", leader, refusal)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as error:
            log.info("no subscription with master %s: %s", leader, error or type(error).__name__)
        except Exception:
            # A defect, not a network failure: say so loudly, and keep the agent following its master.
            log.exception("the subscription with master %s failed", leader)
        finally:
            if self.registered:
                # The stream worked: whatever ended it, the next attempt starts from the smallest wait.
                backoff.reset()
                self.registered = False
                await self.events.on_disconnected()
            self.address = None
        return SubscriptionEnd()

    async def _leader_changes_within(self, seconds: float) -> bool:
        """Wait `seconds`, or less when the leader changes meanwhile (then True)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._leader_changed.wait(), timeout=seconds)
        return self._leader_changed.is_set()

    async def call(self, body: dict, agent_id: str) -> bool:
        """POST a call to the connected master; True when it was accepted (2xx)."""
        address = self.address
        if address is None or not self.registered:
            return False
        loop = asyncio.get_running_loop()
        if body.get("type") == "PONG" and self._heard_within(loop.time(), self.ping_interval):
            return True  # the master heard from us within the ping interval: any call counts as a PONG
        try:
            async with self.session.post(
                f"{address}{CALL_PATH}",
                data=json.dumps(body, separators=(",", ":")),
                headers=self._headers({"Content-Type": "application/json", "Mesos-Agent-Id": agent_id}),
                timeout=aiohttp.ClientTimeout(total=15),
                ssl=self._ssl_for(address),
            ) as response:
                if response.status // 100 == 2:
                    if address == self.address:
                        self._last_accepted_call = loop.time()
                    return True
                text = await response.text()
                if response.status == 401:
                    log.error("%s to master %s: %s", body.get("type"), address, self._credential_refusal(text))
                    return False
                log.warning("master %s answered %s to %s: %s", address, response.status, body.get("type"), text[:300])
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            log.info("call %s to master %s failed: %s", body.get("type"), address, error or type(error).__name__)
        return False

    def _headers(self, headers: dict[str, str]) -> dict[str, str]:
        if self.credential is not None:
            headers["Authorization"] = basic_authorization(self.credential.principal, self.credential.secret)
        return headers

    def _url(self, address: str) -> str:
        """The master's `scheme://host:port`: https when it says so, or when this agent speaks only TLS."""
        if self.tls.enabled and address.startswith("http://"):
            return "https://" + address.removeprefix("http://")
        return address

    def _ssl_for(self, url: str) -> ssl.SSLContext | None:
        if not url.startswith("https://"):
            return None
        if self._client_context is None:
            self._client_context = self.tls.client_context()
        return self._client_context

    def _credential_refusal(self, text: str) -> str:
        if self.credential is None:
            what = "the master requires a credential and this agent has none (set --credential)"
        else:
            what = f"the master refused this agent's credential (principal '{self.credential.principal}')"
        return f"{what}: 401 {text.strip()[:200]}"

    def _heard_within(self, now: float, seconds: float) -> bool:
        return self._last_accepted_call is not None and now - self._last_accepted_call < seconds

    async def _follow_leader(self) -> None:
        async for detected in leader_addresses(self.master):
            address = None if detected is None else self._url(detected)
            if address != self.leader:
                log.info("leading master: %s", address or "none")
            self.leader = address
            self._leader_known.set()
            self._leader_changed.set()

    async def _subscribe(self, address: str) -> None:
        body = self.events.subscribe_body()
        for _redirect in range(MAX_REDIRECTS + 1):
            async with self.session.post(
                f"{address}{SUBSCRIBE_PATH}",
                data=json.dumps(body, separators=(",", ":")),
                headers=self._headers({"Content-Type": "application/json", "Accept": "application/recordio"}),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10),
                ssl=self._ssl_for(address),
            ) as response:
                if response.status == 307:
                    address = self._redirected(address, response.headers.get("Location", ""))
                    log.info("master redirected the subscription to %s", address)
                    continue
                if response.status == 401:
                    raise CredentialRefused(self._credential_refusal(await response.text()))
                if response.status == 503:
                    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                    if retry_after is not None:
                        raise MasterBusy((await response.text())[:300], retry_after)
                    raise NoLeader(await response.text())
                if response.status == 403:
                    raise RegistrationRefused(await response.text() or "403 Forbidden")
                if response.status != 200:
                    raise ValueError(f"subscribe answered {response.status}: {(await response.text())[:300]}")
                await self._read_stream(response, address)
                return
        raise ValueError(f"more than {MAX_REDIRECTS} redirects")

    def _redirected(self, address: str, location: str) -> str:
        """`scheme://host:port` of a redirect's Location (`//host:port/...` keeps the current scheme)."""
        scheme, separator, rest = location.partition("//")
        scheme = scheme.rstrip(":") if separator and scheme else address.split("://", 1)[0]
        host = (rest if separator else location).split("/", 1)[0]
        return self._url(f"{scheme}://{host}")

    async def _read_stream(self, response: aiohttp.ClientResponse, address: str) -> None:
        records = read_records(response.content).__aiter__()
        reader = asyncio.ensure_future(self._next(records))
        leader_change = asyncio.ensure_future(self._leader_changed.wait())
        try:
            while True:
                done, _ = await asyncio.wait(
                    {reader, leader_change}, timeout=self.silence_timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if leader_change in done:
                    log.info("leader changed: leaving master %s", address)
                    return
                if reader not in done:
                    log.warning("no event from master %s for %.0fs: reconnecting", address, self.silence_timeout)
                    return
                record = reader.result()
                if record is None:
                    log.info("master %s closed the event stream", address)
                    return
                reader = asyncio.ensure_future(self._next(records))
                await self._handle(record, address)
        finally:
            reader.cancel()
            leader_change.cancel()

    @staticmethod
    async def _next(records: AsyncIterator[bytes]) -> bytes | None:
        with contextlib.suppress(StopAsyncIteration):
            return await records.__anext__()
        return None

    async def _handle(self, record: bytes, address: str) -> None:
        try:
            event = decode_json(record)
        except JsonInputError as error:
            if not self.registered:
                raise ValueError(f"the first event is not JSON: {error}") from None
            log.error("ignoring an event from master %s that is not JSON: %s", address, error)
            return
        if not isinstance(event, dict):
            event = {"type": f"<a JSON {type(event).__name__}>"}
        if event.get("type") == "REGISTERED":
            await self._on_registered(event, address)
            return
        if not self.registered:
            raise ValueError(f"expected REGISTERED as the first event, got {str(event.get('type'))[:100]}")
        # One event the agent cannot handle must cost that event only, never the stream or the process.
        try:
            await self.events.on_event(event)
        except Exception:
            log.exception("ignoring event %s from master %s: handling it failed", str(event.get("type"))[:100], address)

    async def _on_registered(self, event: dict, address: str) -> None:
        registered = event.get("registered")
        if not isinstance(registered, dict):
            raise ValueError("REGISTERED without a 'registered' object")
        ping_interval = registered.get("ping_interval_seconds") or 0
        if not isinstance(ping_interval, (int, float)) or isinstance(ping_interval, bool):
            raise ValueError(f"REGISTERED: ping_interval_seconds is not a number: {ping_interval!r}"[:300])
        if ping_interval > 0:
            self.ping_interval = float(ping_interval)
            self.silence_timeout = ping_interval * MISSED_PINGS_BEFORE_RECONNECT
        self._last_accepted_call = None
        self.address = address
        self.registered = True
        await self.events.on_registered(registered, address)
