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
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from kazoo.exceptions import NoNodeError

from mesolite.retry import RetryPolicy
from mesolite.zookeeper.membership import Member, leading_member, parse_member
from mesolite.zookeeper.session import SessionState, WatchedEvaluation, ZooKeeperSession

log = logging.getLogger(__name__)

MASTER_INFO_LABEL = "json.info"  # Mesos masters: `json.info_<sequence>` holding a JSON MasterInfo
MARATHON_MEMBER_LABEL = "member"  # Marathon instances: `member_<sequence>` holding `host:port`

# A reading that failed while the session stayed connected (a timeout, a flapping connection) is tried again.
EVALUATION_RETRY = RetryPolicy(initial=0.1, maximum=2.0)

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
    ) -> None:
        self.session = session
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
        try:
            if self._replace_node:
                self._replace_node = False
                await self._delete_node()
            await self._delete_stale_nodes()
            if self.node is None:
                await self.session.run(client.ensure_path, self.path)
                created = await self.session.run(
                    client.create, f"{self.path.rstrip('/')}/{self.label}_", self.data, ephemeral=True, sequence=True
                )
                self.node = created.rsplit("/", 1)[1]
                log.info("contending for leadership as %s", created)
            children = await self.session.run(client.get_children, self.path, watch=self._evaluation.watch)
            leader = leading_member(children)
            if leader is not None and leader != self._leader_member:
                data, _stat = await self.session.run(client.get, f"{self.path.rstrip('/')}/{leader.name}")
                self._set_leader(leader, data)
            elif leader is None:
                self._set_leader(None, None)
        except NoNodeError:
            self._evaluation.schedule()  # the leader went away between listing and reading: look again
            return
        except Exception as error:
            # A connection problem: the session listener brings us back here on CONNECTED. Anything else
            # (or a connection that is back already) is tried again after a back-off.
            log.warning("election under %s interrupted: %s", self.path, error)
            asyncio.get_running_loop().call_later(self._backoff.next_delay(), self._evaluation.schedule)
            return
        self._backoff.reset()
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
            outcome = self._on_elected()
            if asyncio.iscoroutine(outcome):
                await outcome
        elif leader != ours:
            await self._lose(f"{leader.name if leader else 'nobody'} leads now")
