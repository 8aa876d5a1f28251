"""An asyncio-friendly ZooKeeper session: kazoo underneath, state changes and watches delivered on the event loop."""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState, KeeperState
from kazoo.retry import KazooRetry

from mesolite.zookeeper.acls import default_acl
from mesolite.zookeeper.url import ZooKeeperUrl, parse_zookeeper_url

log = logging.getLogger(__name__)

Result = TypeVar("Result")


class SessionState(enum.Enum):
    """What the session means for whoever relies on it (the names are kazoo's)."""

    CONNECTED = "CONNECTED"  # connected; ephemeral nodes of this session exist
    SUSPENDED = "SUSPENDED"  # connection dropped: the session may or may not survive (kazoo is reconnecting)
    # Suspended for a whole session timeout without reconnecting (a ZooKeeper quorum loss, a partition):
    # the servers have expired the session, or will as soon as they have a quorum again. Kazoo cannot tell
    # (only a server can say "expired"), so the session says it, as Mesos's group does. CONNECTED (the
    # session survived after all) or LOST follows once a server answers.
    TIMED_OUT = "TIMED_OUT"
    LOST = "LOST"  # the session is gone (expired or closed): its ephemeral nodes are gone too


StateListener = Callable[[SessionState], Awaitable[None] | None]


class FailFastKazooClient(KazooClient):
    """A KazooClient whose requests fail at once (ConnectionLoss) while the connection is down.

    Kazoo queues a request made while it reconnects and sends it whenever a connection comes back — maybe
    a minute later, after its caller was told it failed (an HTTP client timed out, a term ended). A request
    either goes out now or not at all; requests in flight when the connection drops fail with ConnectionLoss
    as before (their outcome is unknown: see MarathonStorage for settling it).
    """

    def _call(self, request, async_object):  # type: ignore[no-untyped-def] - kazoo's private hook
        if self._state == KeeperState.CONNECTING and async_object is not None:
            async_object.set_exception(ConnectionLoss("not connected to ZooKeeper"))
            return False
        return super()._call(request, async_object)


class ZooKeeperSession:
    """One ZooKeeper session for an asyncio program.

    Kazoo runs its own threads; this class hands everything back to the event loop: state changes go to
    listeners registered with `add_state_listener` (called in order, on the loop), and blocking kazoo calls
    run in a worker thread through `run`. After LOST, kazoo keeps trying and a CONNECTED follows with a
    fresh session; listeners that own ephemeral nodes must recreate them then. A SUSPENDED that lasts a
    whole session timeout is followed by TIMED_OUT.
    """

    def __init__(self, url: ZooKeeperUrl | str, session_timeout: float = 10.0) -> None:
        self.url = parse_zookeeper_url(url) if isinstance(url, str) else url
        # Credentials in the URL: ZooKeeper's digest authentication, on this session and every reconnection.
        # What is created without an explicit ACL gets the default one (see acls.py for who decides).
        self.client = FailFastKazooClient(
            hosts=self.url.hosts,
            timeout=session_timeout,
            auth_data=[("digest", self.url.digest)] if self.url.digest else None,
            default_acl=default_acl(self.url),
            # Never give up reconnecting: a master or agent outlives ZooKeeper outages.
            connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=2.0),
            command_retry=KazooRetry(max_tries=3, delay=0.1, max_delay=1.0),
        )
        self.session_timeout = session_timeout
        self.state = SessionState.LOST
        self._timed_out_timer: asyncio.TimerHandle | None = None
        self._listeners: list[StateListener] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._delivery: asyncio.Queue[SessionState] | None = None
        self._delivery_task: asyncio.Task | None = None

    @property
    def connected(self) -> bool:
        """True only while the session is usable, judged by kazoo itself (not by what was delivered yet)."""
        return self.state == SessionState.CONNECTED and self.client.state == KazooState.CONNECTED

    @property
    def effective_timeout(self) -> float:
        """The session timeout in seconds: what we asked for, or less if the server granted less."""
        negotiated = getattr(self.client, "_session_timeout", None)
        if isinstance(negotiated, int | float) and negotiated > 0:
            return min(self.session_timeout, negotiated / 1000)
        return self.session_timeout

    def add_state_listener(self, listener: StateListener) -> None:
        """Call `listener(state)` on the event loop for every state change, in order."""
        self._listeners.append(listener)

    def remove_state_listener(self, listener: StateListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    async def start(self, timeout: float = 15.0) -> None:  # noqa: ASYNC109 - the contract's signature
        """Connect; `TimeoutError` naming the servers if no session is established within `timeout` seconds."""
        self._loop = asyncio.get_running_loop()
        self._delivery = asyncio.Queue()
        self._delivery_task = asyncio.create_task(self._deliver_states(), name="zookeeper-session-states")
        self.client.add_listener(self._on_kazoo_state)
        try:
            await asyncio.to_thread(self.client.start, timeout)
        except KazooTimeoutError as error:
            await self.stop()
            raise TimeoutError(f"could not connect to ZooKeeper at {self.url.hosts} within {timeout:g}s") from error
        self._on_kazoo_state(KazooState.CONNECTED)

    async def stop(self) -> None:
        """Close the session: listeners hear LOST first (its ephemeral nodes go away with it), then it closes."""
        self.client.remove_listener(self._on_kazoo_state)
        if self._delivery_task is not None:
            self._delivery_task.cancel()
            self._delivery_task = None
        await self._set_state(SessionState.LOST)
        await asyncio.to_thread(self._close_client)

    def _close_client(self) -> None:
        self.client.stop()
        self.client.close()

    async def run(self, function: Callable[..., Result], *args: Any, **kwargs: Any) -> Result:
        """Run a blocking kazoo call (e.g. `session.client.get`) in a worker thread."""
        return await asyncio.to_thread(functools.partial(function, *args, **kwargs))

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        """Schedule `callback(*args)` on the event loop from a kazoo thread (for watch callbacks)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(callback, *args)

    def _on_kazoo_state(self, state: str) -> None:
        # Called from kazoo's threads: only hand the state over, never block here.
        if self._loop is None or self._loop.is_closed() or self._delivery is None:
            return
        self._loop.call_soon_threadsafe(self._delivery.put_nowait, SessionState(state))

    async def _deliver_states(self) -> None:
        assert self._delivery is not None
        while True:
            await self._set_state(await self._delivery.get())

    async def _set_state(self, state: SessionState) -> None:
        if state == self.state or (state == SessionState.TIMED_OUT and self.state != SessionState.SUSPENDED):
            return
        log.info("ZooKeeper session %s: %s -> %s", self.url, self.state.value, state.value)
        self.state = state
        if self._timed_out_timer is not None:
            self._timed_out_timer.cancel()
            self._timed_out_timer = None
        if state == SessionState.SUSPENDED and self._loop is not None and self._delivery is not None:
            self._timed_out_timer = self._loop.call_later(
                self.effective_timeout, self._delivery.put_nowait, SessionState.TIMED_OUT
            )
        for listener in list(self._listeners):
            try:
                outcome = listener(state)
                if asyncio.iscoroutine(outcome):
                    await outcome
            except Exception:
                log.exception("ZooKeeper state listener %r failed on %s", listener, state.value)

    async def __aenter__(self) -> ZooKeeperSession:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


class WatchedEvaluation:
    """Runs an owner's `evaluate()` now and again each time a ZooKeeper watch fires, one evaluation at a time.

    The election and the master detector both read the children of a znode with a watch and
    read them again when it fires. An evaluation runs under the owner's `lock`, and only while `running()`
    says so and the session is connected. Each re-reading is a task of its own, kept here until it ends:
    the event loop holds only a weak reference to a task.
    """

    def __init__(
        self,
        session: ZooKeeperSession,
        evaluate: Callable[[], Awaitable[None]],
        running: Callable[[], bool],
        lock: asyncio.Lock,
    ) -> None:
        self.session = session
        self._evaluate = evaluate
        self._running = running
        self._lock = lock
        self._tasks: set[asyncio.Task] = set()

    async def run(self) -> None:
        """Evaluate now (after any evaluation under way), unless the owner has stopped or the session is down."""
        async with self._lock:
            if self._running() and self.session.connected:
                await self._evaluate()

    def watch(self, _event: object) -> None:
        """The watch to give kazoo (`watch=evaluation.watch`); kazoo calls it on one of its threads."""
        self.session.call_soon(self.schedule)

    def schedule(self) -> None:
        """Evaluate again soon, in a task of its own, unless the owner has stopped."""
        if self._running():
            task = asyncio.create_task(self.run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
