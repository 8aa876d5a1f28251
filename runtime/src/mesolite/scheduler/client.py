"""A Mesos v1 scheduler API client: subscribe, receive events, send calls; follows the leading master.

The client finds the master from a `zk://` URL (or a `file://` holding one, or `host:port`), subscribes with
a chunked RecordIO stream, and hands every event to `on_event`. It re-subscribes with the same framework id
whenever the stream ends, the leader changes, a non-leader redirects it (307), or heartbeats stop arriving.

As in Mesos, a master failover is not a framework error: the master that steps down just closes its streams,
and the client finds the next leader (through ZooKeeper, or at the same fixed address) and subscribes again,
waiting by `RECONNECT_POLICY` between failed attempts (the wait starts over for each newly detected leader).
An ERROR event is different: the master removed the framework, for good. `run()` then raises
`FrameworkRemoved`, and the program decides what that means (Marathon exits so that a standby takes over).

Security, as Mesos's scheduler library does it: with a `secret`, the SUBSCRIBE and every call carry
`Authorization: Basic` for `principal` (which also becomes FrameworkInfo.principal unless the framework set
one). A master that refuses the credentials (401) or the framework (403, an ACL) is final: `run()` raises
`AuthenticationRefused` or `SchedulerError` naming the principal and the master's reason, with no retry. A
master is reached over https when its MasterInfo advertises `address.scheme: https`, when `--master` was given as
`https://host:port`, or when LIBPROCESS_SSL_ENABLED is true (libprocess's switch, for `host:port` masters, so that
`--master=$(mesos-resolve …)` works); `ssl_context` (by default LIBPROCESS_SSL_CA_FILE's, see security/tls.py)
verifies it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp

from mesolite.protocol.recordio import RecordIOError, read_records
from mesolite.retry import Backoff, RetryPolicy
from mesolite.security.authentication import basic_authorization
from mesolite.security.tls import TlsSettings
from mesolite.zookeeper.detector import MasterDetector, MasterLocation, master_address, parse_master_location

log = logging.getLogger(__name__)

SCHEDULER_PATH = "/api/v1/scheduler"
DEFAULT_HEARTBEAT_INTERVAL = 15.0  # Mesos's; SUBSCRIBED tells the real one
MISSED_HEARTBEATS_BEFORE_RECONNECT = 3
MAX_REDIRECTS = 5
# Waits between failed subscription attempts: short at first (a new leader is usually there within a
# second or two), growing while no master answers, jittered so that frameworks do not retry in step.
RECONNECT_POLICY = RetryPolicy(initial=1.0, maximum=10.0, factor=2.0, jitter=True)

EventHandler = Callable[[dict], Awaitable[None] | None]


class SchedulerError(Exception):
    """The master refused the framework for good (e.g. a bad FrameworkInfo or a removed framework)."""


class FrameworkRemoved(SchedulerError):
    """The master sent ERROR: it removed the framework (torn down, failover timeout elapsed, refused)."""


class SchedulerCallError(Exception):
    """A call was not accepted: `status` is the HTTP status (0 when the master could not be reached)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status


class AuthenticationRefused(SchedulerError):
    """The master answered 401: it needs credentials, or refused the ones given (the message names the principal)."""


class NotSubscribed(SchedulerCallError):
    def __init__(self) -> None:
        super().__init__(0, "not subscribed to a master yet")


@dataclass(frozen=True)
class MasterEndpoint:
    """Where one master's scheduler API is: `host:port` and the scheme it speaks."""

    address: str
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}{SCHEDULER_PATH}"

    def __str__(self) -> str:
        return self.address if self.scheme == "http" else f"{self.scheme}://{self.address}"


class _Reconnect(Exception):
    """End the current subscription and subscribe again (to `endpoint` if given)."""

    def __init__(self, reason: str, endpoint: MasterEndpoint | None = None) -> None:
        super().__init__(reason)
        self.endpoint = endpoint


class SchedulerClient:
    """One framework's connection to the Mesos master (see the module docstring).

    `run()` returns after `stop()` or TEARDOWN. It raises `FrameworkRemoved` after an ERROR event (the
    master removed the framework) and `SchedulerError` when the master refuses the subscription outright.
    A leader that steps down or dies is not an error: the client subscribes again, to the next leader.
    """

    def __init__(
        self,
        master: str | MasterLocation,
        framework_info: dict[str, Any],
        on_event: EventHandler,
        *,
        implicit_acknowledgements: bool = False,
        principal: str | None = None,
        secret: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        reconnect_delay: float | None = None,
        missed_heartbeats: int = MISSED_HEARTBEATS_BEFORE_RECONNECT,
    ) -> None:
        if secret is not None and not principal:
            raise ValueError("a secret needs a principal")
        self.location = parse_master_location(master) if isinstance(master, str) else master
        self.framework_info = dict(framework_info)
        if principal and not self.framework_info.get("principal"):
            self.framework_info["principal"] = principal
        self.principal: str | None = principal or self.framework_info.get("principal")
        self.framework_id: str | None = (framework_info.get("id") or {}).get("value")
        self.stream_id: str | None = None
        self.master_address: str | None = None  # host:port of the master we are subscribed to
        self.master_url: str | None = None  # its scheduler API's URL (http or https)
        self.master_info: dict | None = None
        self.heartbeat_interval = DEFAULT_HEARTBEAT_INTERVAL
        self._on_event = on_event
        self._implicit_acknowledgements = implicit_acknowledgements
        self._authorization = {"Authorization": basic_authorization(principal, secret)} if principal and secret else {}
        self._has_secret = secret is not None
        # Read once, here: bad LIBPROCESS_SSL_* settings are the caller's startup error (TlsError), not a retry.
        tls = TlsSettings.from_environment()
        self._ssl_context = ssl_context or tls.client_context()
        # The scheme of masters that do not say theirs: https:// in --master, else libprocess's switch.
        self._default_scheme = self.location.scheme or ("https" if tls.enabled else "http")
        # `reconnect_delay` (tests) replaces the policy's first wait; the wait still grows from there.
        policy = RECONNECT_POLICY
        if reconnect_delay is not None:
            policy = RetryPolicy(reconnect_delay, max(reconnect_delay, policy.maximum), policy.factor, policy.jitter)
        self._reconnect_backoff: Backoff = policy.backoff()
        self.removed_reason: str | None = None  # the ERROR's message, once the master removed the framework
        self._missed_heartbeats = missed_heartbeats
        self._http: aiohttp.ClientSession | None = None
        self._detector: MasterDetector | None = None
        self._leader: MasterEndpoint | None = (
            MasterEndpoint(self.location.address, self._default_scheme) if self.location.address else None
        )
        self._leader_changed = asyncio.Event()
        self._leader_generation = 0  # counts detected leader changes: each one restarts the back-off
        self._stopping = asyncio.Event()
        self.subscribed = asyncio.Event()

    # --- running ----------------------------------------------------------------------------------

    async def run(self) -> None:
        # `sock_connect`, not `connect`: waiting for a free pooled connection under load is not a dead master.
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._ssl_context),
            timeout=aiohttp.ClientTimeout(total=30, sock_connect=5),
        )
        try:
            if self.location.zookeeper is not None:
                self._detector = MasterDetector(self.location.zookeeper, on_change=self._on_leader_change)
                await self._detector.start()
            redirected_to: MasterEndpoint | None = None
            while not self._stopping.is_set():
                endpoint = redirected_to or await self._wait_for_leader()
                if endpoint is None:
                    break
                redirected_to = None
                generation = self._leader_generation
                try:
                    await self._subscribe_and_read(endpoint)
                    if self._stopping.is_set():
                        break
                    log.warning("subscription stream to %s ended; subscribing again", endpoint)
                except _Reconnect as reconnect:
                    redirected_to = reconnect.endpoint
                    log.warning("reconnecting: %s", reconnect)
                except aiohttp.ClientConnectorCertificateError as error:
                    # Logged as an error: retrying reaches the same certificate until someone fixes the CA or
                    # the master's certificate (the master may be mid-rollout, so the client keeps trying).
                    log.error("the certificate of the master at %s is not trusted: %s", endpoint, error)
                except (aiohttp.ClientError, RecordIOError, OSError, TimeoutError, ValueError) as error:
                    log.warning("subscription to %s failed: %s", endpoint, error or type(error).__name__)
                self._disconnected()
                if self._leader_generation != generation:
                    self._reconnect_backoff.reset()  # a new leader: try it at once, back off afresh
                elif redirected_to is None:
                    await self._pause(self._reconnect_backoff.next_delay())
        finally:
            self._disconnected()
            if self._detector is not None:
                await self._detector.stop()
            await self._http.close()
        if self.removed_reason is not None:
            raise FrameworkRemoved(f"the master removed framework {self.framework_id}: {self.removed_reason}")

    async def stop(self) -> None:
        """Stop receiving events; `run()` returns. The framework stays registered (use `teardown` to end it)."""
        self._stopping.set()
        self._leader_changed.set()

    def _disconnected(self) -> None:
        self.stream_id = None
        self.subscribed.clear()

    async def _pause(self, seconds: float) -> None:
        """Wait `seconds`, less if the client is stopped or a new leader is detected."""
        generation = self._leader_generation
        deadline = asyncio.get_running_loop().time() + seconds
        while not self._stopping.is_set() and self._leader_generation == generation:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            self._leader_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._leader_changed.wait(), remaining)

    async def _wait_for_leader(self) -> MasterEndpoint | None:
        while not self._stopping.is_set():
            if self._leader is not None:
                return self._leader
            log.info("waiting for a leading master in %s", self.location.zookeeper)
            self._leader_changed.clear()
            await self._leader_changed.wait()
        return None

    def _on_leader_change(self, leader: dict | None) -> None:
        self._leader = self._endpoint_of(leader) if leader else None
        self._leader_generation += 1
        self._leader_changed.set()

    def _endpoint_of(self, leader: dict) -> MasterEndpoint:
        """A detected leader's endpoint: its MasterInfo's `address.scheme` when it advertises one."""
        scheme = str((leader.get("address") or {}).get("scheme") or self._default_scheme).lower()
        return MasterEndpoint(master_address(leader), scheme)

    def _headers(self, headers: dict[str, str]) -> dict[str, str]:
        return {**headers, **self._authorization}

    # --- the subscription stream ------------------------------------------------------------------

    async def _subscribe_and_read(self, endpoint: MasterEndpoint) -> None:
        """Subscribe at `endpoint` and deliver events until the stream ends or must be abandoned."""
        assert self._http is not None
        subscribe: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": self._framework_info()}}
        if self.framework_id:
            subscribe["framework_id"] = {"value": self.framework_id}
        self._leader_changed.clear()
        async with self._http.post(
            endpoint.url,
            data=json.dumps(subscribe),
            headers=self._headers({"Content-Type": "application/json", "Accept": "application/json"}),
            allow_redirects=False,
            # The stream lives for as long as the framework: no total timeout; the heartbeat watchdog decides.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
        ) as response:
            await self._check_subscribe_response(endpoint, response)
            self.stream_id = response.headers.get("Mesos-Stream-Id")
            self.master_address = endpoint.address
            self.master_url = endpoint.url
            log.info("subscribed at %s (stream %s)", endpoint, self.stream_id)
            records = read_records(response.content).__aiter__()
            while True:
                record = await self._next_record(records)
                if record is None:
                    return
                if await self._handle(json.loads(record)):
                    return

    async def _check_subscribe_response(self, endpoint: MasterEndpoint, response: aiohttp.ClientResponse) -> None:
        if response.status == 200:
            return
        body = (await response.text())[:500].strip()
        if response.status in (301, 302, 307, 308):
            location = response.headers.get("Location", "")
            leader = _endpoint_from_location(location, endpoint.scheme)
            if leader is None or leader == endpoint:
                raise _Reconnect(f"{endpoint} redirected to an unusable location '{location}'")
            raise _Reconnect(f"{endpoint} is not the leader; it redirected to {leader}", leader)
        if response.status == 503 or response.status >= 500:
            raise _Reconnect(f"{endpoint} answered {response.status} ({body or 'no leader yet'})")
        # 400 (bad FrameworkInfo), 401/403 (not allowed or removed), 415...: retrying cannot help.
        if response.status == 401:
            raise AuthenticationRefused(f"master at {endpoint} {self._refusal_of_credentials()} (HTTP 401)")
        if response.status == 403:
            raise SchedulerError(
                f"master at {endpoint} refused framework '{self.framework_info.get('name', '')}' of principal "
                f"'{self.principal or '(none)'}': HTTP 403: {body or 'forbidden'}"
            )
        raise SchedulerError(f"master at {endpoint} refused the subscription: HTTP {response.status}: {body}")

    def _refusal_of_credentials(self) -> str:
        if self._has_secret:
            return f"refused the credentials of principal '{self.principal}'"
        if self.principal:
            return f"refused principal '{self.principal}' without a secret: it requires authentication"
        return "refused an unauthenticated framework: it requires a principal and a secret"

    async def _next_record(self, records) -> bytes | None:
        """The next record, or None at the end; `_Reconnect` when heartbeats stop or the leader changes.

        Nothing is delivered after `stop()` (or TEARDOWN), not even events the stream already holds: the
        caller has finished with the framework, and a call it made on such an event could only be refused.
        """
        if self._stopping.is_set():
            return None
        read = asyncio.ensure_future(anext(records, None))
        changed = asyncio.ensure_future(self._leader_changed.wait())
        try:
            done, _ = await asyncio.wait(
                {read, changed},
                timeout=self.heartbeat_interval * self._missed_heartbeats,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except asyncio.CancelledError:
            read.cancel()  # the client is being stopped: the pending read must not outlive it unobserved
            raise
        finally:
            changed.cancel()
        if read in done and not self._stopping.is_set():
            return read.result()
        read.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await read
        if self._stopping.is_set():
            return None
        if changed in done:
            raise _Reconnect(f"the leading master changed to {self._leader or 'none'}")
        raise _Reconnect(f"no event for {self._missed_heartbeats} heartbeat intervals from {self.master_address}")

    async def _handle(self, event: dict) -> bool:
        """Deliver one event; True when the subscription is over for good."""
        kind = event.get("type")
        if kind == "SUBSCRIBED":
            subscribed = event.get("subscribed", {})
            self.framework_id = (subscribed.get("framework_id") or {}).get("value", self.framework_id)
            self.heartbeat_interval = float(subscribed.get("heartbeat_interval_seconds") or DEFAULT_HEARTBEAT_INTERVAL)
            self.master_info = subscribed.get("master_info")
            self._reconnect_backoff.reset()
            self.subscribed.set()
        outcome = self._on_event(event)
        if asyncio.iscoroutine(outcome):
            await outcome
        if kind == "UPDATE" and self._implicit_acknowledgements:
            with contextlib.suppress(SchedulerCallError):
                await self.acknowledge(event.get("update", {}).get("status", {}))
        if kind == "ERROR":
            # Only a removed framework gets ERROR (a master stepping down just closes the stream): final.
            self.removed_reason = str(event.get("error", {}).get("message") or "no reason given")
            log.error("master sent ERROR: %s", self.removed_reason)
            self._stopping.set()
            return True
        return False

    def _framework_info(self) -> dict:
        info = dict(self.framework_info)
        if self.framework_id:
            info["id"] = {"value": self.framework_id}
        return info

    # --- calls ------------------------------------------------------------------------------------

    async def call(self, call: dict[str, Any]) -> None:
        """Send a call to the master we are subscribed to; `SchedulerCallError` unless it is accepted (2xx)."""
        if self._http is None or not self.stream_id or not self.master_url or not self.framework_id:
            raise NotSubscribed()
        body = {"framework_id": {"value": self.framework_id}, **call}
        try:
            async with self._http.post(
                self.master_url,
                data=json.dumps(body),
                headers=self._headers({"Content-Type": "application/json", "Mesos-Stream-Id": self.stream_id}),
                allow_redirects=False,
            ) as response:
                if response.status == 401:
                    raise SchedulerCallError(401, f"{call.get('type')} refused: {self._refusal_of_credentials()}")
                if response.status // 100 != 2:
                    message = (await response.text())[:500].strip()
                    raise SchedulerCallError(response.status, f"{call.get('type')} refused: {message}")
        except (aiohttp.ClientError, TimeoutError) as error:
            reason = str(error) or type(error).__name__
            raise SchedulerCallError(
                0, f"{call.get('type')} not delivered to {self.master_address}: {reason}"
            ) from error

    async def accept(self, offer_ids: Iterable[str], operations: list[dict], filters: dict | None = None) -> None:
        accept: dict[str, Any] = {
            "offer_ids": [{"value": offer_id} for offer_id in offer_ids],
            "operations": operations,
        }
        if filters is not None:
            accept["filters"] = filters
        await self.call({"type": "ACCEPT", "accept": accept})

    async def launch(self, offer_id: str, tasks: list[dict], filters: dict | None = None) -> None:
        """ACCEPT one offer with a single LAUNCH operation."""
        await self.accept([offer_id], [{"type": "LAUNCH", "launch": {"task_infos": tasks}}], filters)

    async def decline(self, offer_ids: Iterable[str], filters: dict | None = None) -> None:
        decline: dict[str, Any] = {"offer_ids": [{"value": offer_id} for offer_id in offer_ids]}
        if filters is not None:
            decline["filters"] = filters
        await self.call({"type": "DECLINE", "decline": decline})

    async def acknowledge(self, status: dict) -> None:
        """Acknowledge a TaskStatus; statuses without `uuid` (generated by the master) need none."""
        if not status.get("uuid") or "agent_id" not in status:
            return
        await self.call(
            {
                "type": "ACKNOWLEDGE",
                "acknowledge": {"agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]},
            }
        )

    async def kill(self, task_id: str, agent_id: str | None = None, kill_policy: dict | None = None) -> None:
        kill: dict[str, Any] = {"task_id": {"value": task_id}}
        if agent_id:
            kill["agent_id"] = {"value": agent_id}
        if kill_policy:
            kill["kill_policy"] = kill_policy
        await self.call({"type": "KILL", "kill": kill})

    async def reconcile(self, tasks: Iterable[tuple[str, str | None]] = ()) -> None:
        """Explicit reconciliation of (task id, agent id) pairs; with none, implicit (all tasks)."""
        entries = []
        for task_id, agent_id in tasks:
            entry: dict[str, Any] = {"task_id": {"value": task_id}}
            if agent_id:
                entry["agent_id"] = {"value": agent_id}
            entries.append(entry)
        await self.call({"type": "RECONCILE", "reconcile": {"tasks": entries}})

    async def revive(self, roles: list[str] | None = None) -> None:
        await self.call({"type": "REVIVE", "revive": {"roles": roles}} if roles else {"type": "REVIVE"})

    async def suppress(self, roles: list[str] | None = None) -> None:
        await self.call({"type": "SUPPRESS", "suppress": {"roles": roles}} if roles else {"type": "SUPPRESS"})

    async def shutdown(self, executor_id: str, agent_id: str) -> None:
        await self.call(
            {"type": "SHUTDOWN", "shutdown": {"executor_id": {"value": executor_id}, "agent_id": {"value": agent_id}}}
        )

    async def message(self, agent_id: str, executor_id: str, data: bytes) -> None:
        await self.call(
            {
                "type": "MESSAGE",
                "message": {
                    "agent_id": {"value": agent_id},
                    "executor_id": {"value": executor_id},
                    "data": base64.b64encode(data).decode(),
                },
            }
        )

    async def request(self, requests: list[dict]) -> None:
        await self.call({"type": "REQUEST", "request": {"requests": requests}})

    async def teardown(self) -> None:
        """End the framework: the master kills its tasks and forgets it. `run()` then returns."""
        await self.call({"type": "TEARDOWN"})
        await self.stop()


def _endpoint_from_location(location: str, current_scheme: str) -> MasterEndpoint | None:
    """The leader a redirect names: `//host:port/path` as Mesos writes it (the scheme stays), or a full URL."""
    text = location.strip()
    scheme = current_scheme
    if text.startswith("//"):
        text = text[2:]
    elif "://" in text:
        scheme, text = text.split("://", 1)
        scheme = scheme.lower()
        if scheme not in ("http", "https"):
            return None
        if current_scheme == "https":
            scheme = "https"  # never downgrade: the credentials would then cross the network in clear
    else:
        return None
    address = text.split("/", 1)[0]
    return MasterEndpoint(address, scheme) if address else None
