"""Leader election in ZooKeeper, one implementation for the master and Marathon: ephemeral sequential member
znodes `<label>_<sequence>` under a path, the lowest sequence leads.

What a dropped connection means is the one thing that differs between the two users, and it is a policy:

* `KEEP_TERM_UNTIL_EXPIRY` (the Mesos master's contender): a SUSPENDED connection does not end the term.
  The session may well survive (kazoo reconnects to another server within the session timeout), and while
  it may, nobody else can be elected: our znode lives as long as the session. The term ends when the
  session is LOST, or when the connection has been gone for a whole session timeout (the session has then
  expired on the servers, or will as soon as they have a quorum again: Mesos's group does the same). Safety
  while suspended is the owner's business: the master acts only under its `LeadershipLease`.
* `STEP_DOWN_WHEN_SUSPENDED` (Curator's LeaderLatch, which Marathon uses): the term ends the moment the
  connection drops, and nobody is known to lead until the connection is back. On reconnection the old
  znode is replaced by a new one, at the back of the line, so that another instance may take over.

With credentials in the zk:// URL the znodes get ACLs (decided in acls.py): the master's are world-readable,
so that detectors without credentials find the leader; Marathon's are readable by Marathon alone. Credentials
that ZooKeeper refuses (the path belongs to another user) are logged as such and tried again slowly; a term
whose start fails (its owner cannot recover, for example) steps aside, so that another candidate may lead.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from kazoo.exceptions import NoAuthError, NoNodeError

from mesolite.retry import RetryPolicy
from mesolite.zookeeper.acls import (
    Readers,
    ZooKeeperAccessDenied,
    access_denied,
    ensure_node,
    refusals_named,
    znode_acl,
)
from mesolite.zookeeper.membership import Member, leading_member, parse_member
from mesolite.zookeeper.session import SessionState, WatchedEvaluation, ZooKeeperSession

log = logging.getLogger(__name__)

MASTER_INFO_LABEL = "json.info"  # Mesos masters: `json.info_<sequence>` holding a JSON MasterInfo
MARATHON_MEMBER_LABEL = "member"  # Marathon instances: `member_<sequence>` holding `host:port`

# A reading that failed while the session stayed connected (a timeout, a flapping connection) is tried again.
EVALUATION_RETRY = RetryPolicy(initial=0.1, maximum=2.0)
# Refused credentials, or a term that could not start: nothing a quick retry fixes (an operator does), but
# trying again now and then recovers by itself once it is fixed, and says why each time until then.
REFUSED_RETRY = RetryPolicy(initial=1.0, maximum=30.0)

ElectedCallback = Callable[[], Awaitable[None] | None]
LostCallback = Callable[[str], Awaitable[None] | None]


class SuspensionPolicy(enum.Enum):
    """What the term does when the ZooKeeper connection drops (see the module's documentation)."""

    KEEP_TERM_UNTIL_EXPIRY = "keep the term until the session expires"
    STEP_DOWN_WHEN_SUSPENDED = "step down when the connection drops"


class LeaderElection:
    """Contends for leadership under `path` with `data` in its znode; reports terms and who leads.

    `on_elected()` is called when a term starts, `on_lost(reason)` when it ends (see `SuspensionPolicy` for
    what ends it besides being out-sequenced or withdrawing). `leader_data` is the data of the leading member
    as last read (None while nobody is known to lead); `leader_changed` (optional) hears every change of it.
    `readers` says who may read the znodes once the URL has credentials: by default everyone for the master's
    `json.info_` members (detectors run without credentials), the owner alone for any other label (Marathon's
    instances share its credentials).
    """

    def __init__(
        self,
        session: ZooKeeperSession,
        data: dict[str, Any] | bytes,
        on_elected: ElectedCallback,
        on_lost: LostCallback,
        *,
        policy: SuspensionPolicy,
        label: str = MASTER_INFO_LABEL,
        path: str | None = None,
        leader_changed: Callable[[bytes | None], None] | None = None,
        readers: Readers | None = None,
    ) -> None:
        self.session = session
        self.readers = readers or (Readers.EVERYONE if label == MASTER_INFO_LABEL else Readers.OWNER)
        self.path = (path or session.url.path).rstrip("/") or "/"
        self.data = data if isinstance(data, bytes) else json.dumps(data).encode()
        self.label = label
        self.policy = policy
        self.leader_data: bytes | None = None
        self._on_elected = on_elected
        self._on_lost = on_lost
        self._leader_changed = leader_changed
        self.node: str | None = None  # our znode's name (not path) while we have one
        self._leading = False  # what on_elected / on_lost last said
        self._leader_member: Member | None = None
        self._replace_node = False  # STEP_DOWN: contend anew with a fresh znode once reconnected
        # Paths of our earlier znodes not deleted yet (the connection dropped again mid-delete). Such a znode
        # lives as long as our session and would lead the line ahead of our new one: we would wait for
        # ourselves forever. So nothing new is created before they are gone.
        self._stale_nodes: set[str] = set()
        self._running = False
        self._lock = asyncio.Lock()
        self._evaluation = WatchedEvaluation(session, self._evaluate, lambda: self._running, self._lock)
        self._backoff = EVALUATION_RETRY.backoff()
        self._refused_backoff = REFUSED_RETRY.backoff()
        self._failed_term_backoff = REFUSED_RETRY.backoff()
        self._resting_until = 0.0  # event-loop time before which no new znode is created (after a failed term)

    @property
    def node_path(self) -> str | None:
        return f"{self.path.rstrip('/')}/{self.node}" if self.node else None

    @property
    def is_leader(self) -> bool:
        """Whether this candidate holds a term right now.

        Under `STEP_DOWN_WHEN_SUSPENDED` it is false the moment kazoo sees the connection drop (before the
        state reaches the event loop). Under `KEEP_TERM_UNTIL_EXPIRY` the term outlives a dropped connection:
        whoever acts on it must also hold a fresh lease.
        """
        if self.policy == SuspensionPolicy.STEP_DOWN_WHEN_SUSPENDED:
            return self._leading and self.session.connected
        return self._leading

    async def start(self) -> None:
        """Create our znode and start watching; `on_elected` follows if (and when) we have the lowest sequence."""
        self._running = True
        self.session.add_state_listener(self._on_session_state)
        await self._evaluation.run()

    async def stop(self) -> None:
        """Withdraw: end the term (calling `on_lost`) and delete our znode so that the next candidate leads."""
        self._running = False
        self.session.remove_state_listener(self._on_session_state)
        await self._lose("withdrew from the election")
        async with self._lock:
            await self._delete_node()

    async def abdicate(self) -> None:
        """Step down and contend again at the back of the line (Marathon's DELETE /v2/leader)."""
        async with self._lock:
            await self._lose("abdicated")
            await self._delete_node()
        self._evaluation.schedule()

    async def _delete_node(self) -> None:
        """Delete our znode (under `self._lock`); if that fails, the next evaluation deletes it first."""
        path, self.node = self.node_path, None
        if path is not None:
            self._stale_nodes.add(path)
        try:
            await self._delete_stale_nodes()
        except Exception as error:
            log.warning("could not delete %s yet: %s", ", ".join(sorted(self._stale_nodes)), error)

    async def _delete_stale_nodes(self) -> None:
        """Delete our earlier znodes; raises (a connection error) when one cannot be deleted now."""
        for path in sorted(self._stale_nodes):
            if not self.session.connected:
                raise ConnectionError("not connected to ZooKeeper")
            with contextlib.suppress(NoNodeError):  # deleted already (an answer lost with the connection)
                await self.session.run(self.session.client.delete, path)
            self._stale_nodes.discard(path)

    async def _create_node(self) -> None:
        """Create our member znode (and the election path, if missing) with the ACL `self.readers` asks for."""
        client, url = self.session.client, self.session.url
        await self.session.run(ensure_node, client, url, self.path, self.readers)
        with refusals_named(url, self.path, "creating a candidate znode under"):
            created = await self.session.run(
                client.create,
                f"{self.path.rstrip('/')}/{self.label}_",
                self.data,
                acl=znode_acl(url, self.readers),
                ephemeral=True,
                sequence=True,
            )
        self.node = created.rsplit("/", 1)[1]
        log.info("contending for leadership as %s", created)

    async def _step_aside(self, error: Exception) -> None:
        """A term whose start failed: end it and leave the line for a while, so that another candidate may lead.

        Holding on to the lowest znode would keep every other candidate from leading, for as long as the cause
        lasts (refused credentials last until an operator fixes them). Under `self._lock`.
        """
        delay = self._failed_term_backoff.next_delay()
        message = "the term that started as %s could not start: %s; stepping aside for %.0fs"
        if isinstance(error, NoAuthError):
            log.error(message, self.node_path, error, delay)  # says it all: no traceback
        else:
            log.error(message, self.node_path, error, delay, exc_info=error)
        await self._lose(f"the term could not start: {error}")
        await self._delete_node()
        loop = asyncio.get_running_loop()
        self._resting_until = loop.time() + delay
        loop.call_later(delay, self._evaluation.schedule)

    async def _on_session_state(self, state: SessionState) -> None:
        if state == SessionState.CONNECTED:
            await self._evaluation.run()
        elif state == SessionState.SUSPENDED:
            if self.policy == SuspensionPolicy.STEP_DOWN_WHEN_SUSPENDED:
                self._replace_node = True
                self._set_leader(None, None)
                await self._lose("ZooKeeper connection suspended")
            else:
                log.warning("ZooKeeper connection suspended: keeping the term until the session expires")
        elif state == SessionState.TIMED_OUT:
            # Disconnected for a whole session timeout: the servers have expired the session (or will, as soon
            # as they have a quorum). If it survives after all, CONNECTED finds our znode and a new term starts.
            self._set_leader(None, None)
            await self._lose("disconnected from ZooKeeper for longer than the session timeout")
        elif state == SessionState.LOST:
            self.node = None  # the ephemeral znodes died with the session
            self._stale_nodes.clear()
            self._replace_node = False
            self._set_leader(None, None)
            await self._lose("ZooKeeper session expired")

    async def _lose(self, reason: str) -> None:
        if not self._leading:
            return
        self._leading = False
        log.warning("lost leadership: %s", reason)
        outcome = self._on_lost(reason)
        if asyncio.iscoroutine(outcome):
            await outcome

    def _set_leader(self, member: Member | None, data: bytes | None) -> None:
        self._leader_member = member
        if data != self.leader_data:
            self.leader_data = data
            if self._leader_changed is not None:
                self._leader_changed(data)

    async def _evaluate(self) -> None:
        """Make sure we have a znode, then lead if it has the lowest sequence; re-arms the children watch.

        Called through `self._evaluation`: under `self._lock`, while contending and connected.
        """
        client = self.session.client
        loop = asyncio.get_running_loop()
        try:
            if self._replace_node:
                self._replace_node = False
                await self._delete_node()
            await self._delete_stale_nodes()
            resting = self.node is None and loop.time() < self._resting_until
            if self.node is None and not resting:
                await self._create_node()
            with refusals_named(self.session.url, self.path, "listing the candidates under"):
                children = await self.session.run(client.get_children, self.path, watch=self._evaluation.watch)
            leader = leading_member(children)
            if leader is not None and leader != self._leader_member:
                leader_path = f"{self.path.rstrip('/')}/{leader.name}"
                with refusals_named(self.session.url, leader_path, "reading the leader's znode"):
                    data, _stat = await self.session.run(client.get, leader_path)
                self._set_leader(leader, data)
            elif leader is None:
                self._set_leader(None, None)
        except NoNodeError:
            self._evaluation.schedule()  # the leader went away between listing and reading: look again
            return
        except NoAuthError as error:
            if not isinstance(error, ZooKeeperAccessDenied):
                error = access_denied(self.session.url, self.path, "contending under")
            delay = self._refused_backoff.next_delay()
            log.error("cannot contend for leadership: %s (trying again in %.0fs)", error, delay)
            loop.call_later(delay, self._evaluation.schedule)
            return
        except Exception as error:
            # A connection problem: the session listener brings us back here on CONNECTED. Anything else
            # (or a connection that is back already) is tried again after a back-off.
            log.warning("election under %s interrupted: %s", self.path, error)
            asyncio.get_running_loop().call_later(self._backoff.next_delay(), self._evaluation.schedule)
            return
        self._backoff.reset()
        self._refused_backoff.reset()
        if resting:
            # Stepped aside after a failed term: contend again once the rest is over.
            loop.call_later(self._resting_until - loop.time(), self._evaluation.schedule)
            return
        if self.node not in children:
            # Someone deleted our znode (or the session was replaced underneath us): contend anew.
            self.node = None
            await self._lose(f"our znode under {self.path} disappeared")
            self._evaluation.schedule()
            return
        ours = parse_member(self.node)
        if leader == ours and not self._leading:
            if not self.session.connected:  # the session dropped while we looked: no new term now
                return
            self._leading = True
            log.info("elected leader as %s", self.node_path)
            try:
                outcome = self._on_elected()
                if asyncio.iscoroutine(outcome):
                    await outcome
            except Exception as error:
                await self._step_aside(error)
                return
            self._failed_term_backoff.reset()
        elif leader != ours:
            await self._lose(f"{leader.name if leader else 'nobody'} leads now")
