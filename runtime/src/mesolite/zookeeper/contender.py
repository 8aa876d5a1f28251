"""Leader election the way Mesos masters do it: an ephemeral sequential `json.info_` znode, lowest sequence leads."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from kazoo.exceptions import NoNodeError

from mesolite.zookeeper.membership import leading_member, parse_member
from mesolite.zookeeper.session import SessionState, WatchedEvaluation, ZooKeeperSession

log = logging.getLogger(__name__)

MASTER_INFO_LABEL = "json.info"

ElectedCallback = Callable[[], Awaitable[None] | None]
LostCallback = Callable[[str], Awaitable[None] | None]


class Contender:
    """Contends for leadership under the session URL's path with `data` (MasterInfo for masters) in its znode.

    `on_elected()` is called when this contender becomes the leader; `on_lost(reason)` when it stops being
    the leader. The ZooKeeper session going SUSPENDED or LOST ends leadership *at once* (before anyone else
    can be elected, since the server only expires the session after its timeout), so that two leaders never
    act at the same time. When the session comes back, the contender contends again: with its old znode if
    the session survived, with a new one otherwise.
    """

    def __init__(
        self,
        session: ZooKeeperSession,
        data: dict[str, Any] | bytes,
        on_elected: ElectedCallback,
        on_lost: LostCallback,
        label: str = MASTER_INFO_LABEL,
        path: str | None = None,
    ) -> None:
        self.session = session
        self.path = path or session.url.path
        self.data = data if isinstance(data, bytes) else json.dumps(data).encode()
        self.label = label
        self._on_elected = on_elected
        self._on_lost = on_lost
        self.node: str | None = None  # our znode's name (not path) while we have one
        self._leading = False  # what on_elected / on_lost last said
        self._running = False
        self._lock = asyncio.Lock()
        self._evaluation = WatchedEvaluation(session, self._evaluate, lambda: self._running, self._lock)

    @property
    def is_leader(self) -> bool:
        """Whether to act as leader right now: false the moment kazoo sees the connection drop."""
        return self._leading and self.session.connected

    async def start(self) -> None:
        """Create our znode and start watching; `on_elected` follows if (and when) we have the lowest sequence."""
        self._running = True
        self.session.add_state_listener(self._on_session_state)
        await self._evaluation.run()

    async def stop(self) -> None:
        """Withdraw: stop leading (calling `on_lost`) and delete our znode so that the next contender leads."""
        self._running = False
        self.session.remove_state_listener(self._on_session_state)
        await self._lose("withdrew from the election")
        async with self._lock:
            node, self.node = self.node, None
            if node is not None and self.session.connected:
                try:
                    await self.session.run(self.session.client.delete, f"{self.path}/{node}")
                except NoNodeError:
                    pass
                except Exception as error:  # the session may be going down; the node then dies with it
                    log.warning("could not delete %s/%s: %s", self.path, node, error)

    async def _on_session_state(self, state: SessionState) -> None:
        if state == SessionState.CONNECTED:
            await self._evaluation.run()
            return
        # SUSPENDED or LOST: stop acting as leader before anything else happens.
        await self._lose(f"ZooKeeper session {state.value}")
        if state == SessionState.LOST:
            self.node = None  # the ephemeral znode died with the session

    async def _lose(self, reason: str) -> None:
        if not self._leading:
            return
        self._leading = False
        log.warning("lost leadership: %s", reason)
        outcome = self._on_lost(reason)
        if asyncio.iscoroutine(outcome):
            await outcome

    async def _evaluate(self) -> None:
        """Make sure we have a znode, then lead if it has the lowest sequence; re-arms the children watch.

        Called through `self._evaluation`: under `self._lock`, while contending and connected.
        """
        client = self.session.client
        try:
            if self.node is None:
                await self.session.run(client.ensure_path, self.path)
                created = await self.session.run(
                    client.create, f"{self.path}/{self.label}_", self.data, ephemeral=True, sequence=True
                )
                self.node = created.rsplit("/", 1)[1]
                log.info("contending for leadership as %s", created)
            children = await self.session.run(client.get_children, self.path, watch=self._evaluation.watch)
        except Exception as error:
            # A connection problem: the session listener will bring us back here on CONNECTED.
            log.warning("election under %s interrupted: %s", self.path, error)
            return
        if self.node not in children:
            # Someone deleted our znode (or the session was replaced underneath us): contend anew.
            self.node = None
            await self._lose(f"our znode under {self.path} disappeared")
            self._evaluation.schedule()
            return
        leader = leading_member(children)
        ours = parse_member(self.node)
        if leader == ours and not self._leading:
            if not self.session.connected:  # the session dropped while we looked: no leading now
                return
            self._leading = True
            log.info("elected leader as %s/%s", self.path, self.node)
            outcome = self._on_elected()
            if asyncio.iscoroutine(outcome):
                await outcome
        elif leader != ours:
            await self._lose(f"{leader.name if leader else 'nobody'} leads now")
