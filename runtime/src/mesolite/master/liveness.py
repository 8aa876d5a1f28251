"""Agent liveness: whether each agent is still there, judged by PINGs it answers.

The master PINGs every agent with a stream once per `agent_ping_timeout`, and an agent that has been silent for
`max_agent_ping_timeouts` of those intervals is marked unreachable (`Master.remove_agent`, which reports its
tasks). An agent whose stream ends is only disconnected: its tasks keep running until that same silence limit.
This is apart from `master.py` as Mesos keeps its agent observer apart from `master.cpp`: the observer decides
that an agent is gone, the master decides what that means for frameworks, tasks and offers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from mesolite.master.agents import AgentState, RegisteredAgent
from mesolite.master.streams import EventStream
from mesolite.protocol.v1 import encode_json, event, now

if TYPE_CHECKING:
    from mesolite.master.master import Master

log = logging.getLogger(__name__)

# Agents are pinged in this many slices of the ping interval, each agent once per interval: ten thousand
# agents then make a steady trickle of PINGs (and PONGs) instead of one burst that stalls everything else.
PING_SLICES = 15
PING_RECORD = encode_json(event("PING", {}))


class AgentLiveness:
    """PINGs the agents of one `Master` and marks those that stopped answering unreachable."""

    def __init__(self, master: Master) -> None:
        self.master = master
        # Agents in the order their next PING is due: (due, agent id); see `run`.
        self.schedule: deque[tuple[float, str]] = deque()

    def watch(self, agent: RegisteredAgent, stream: EventStream) -> None:
        """Start watching an agent over its new stream: its first PING is due one interval from now."""
        agent.next_ping = time.monotonic() + self.master.settings.agent_ping_timeout
        self.schedule.append((agent.next_ping, agent.agent_id))
        stream.set_close_callback(lambda closed: self.stream_closed(agent.agent_id, closed))

    def stream_closed(self, agent_id: str, stream: EventStream) -> None:
        master = self.master
        agent = master.agents.get(agent_id)
        if master.stopped or agent is None or agent.stream is not stream:
            return
        agent.stream = None
        if agent.state == AgentState.ACTIVE:
            log.info("agent %s disconnected; its tasks keep running until the ping timeout", agent_id)
            agent.state = AgentState.DISCONNECTED
            master.allocator.set_agent_active(agent_id, False)
            master.rescind_offers_on(agent)

    async def run(self) -> None:
        """PING every active agent once per `agent_ping_timeout`, spread over the interval (each agent
        `agent_ping_timeout` after its (re-)registration, then at that pace); once per interval, check who
        has been silent too long."""
        master = self.master
        interval = master.settings.agent_ping_timeout
        tick = interval / PING_SLICES
        next_check = last_pass = time.monotonic() + interval
        while True:
            await asyncio.sleep(tick)
            if not master.is_leading():
                continue
            current = time.monotonic()
            if current - last_pass > interval:
                # No PING went out for a whole interval (this process stalled, or could not act as leader):
                # the silence was ours, not the agents'. Give them a fresh start.
                log.warning("no agent was pinged for %.1fs; agents' silence clocks restart", current - last_pass)
                for agent in master.agents.values():
                    agent.last_seen = now()
            last_pass = current
            try:
                self.send_pings(current)
                if current >= next_check:
                    next_check = current + interval
                    self.check_agents()
            except Exception:
                log.exception("agent liveness check failed")

    def send_pings(self, current: float) -> None:
        schedule = self.schedule
        agents = self.master.agents
        interval = self.master.settings.agent_ping_timeout
        while schedule and schedule[0][0] <= current:
            due, agent_id = schedule.popleft()
            agent = agents.get(agent_id)
            if agent is None or agent.next_ping != due or agent.stream is None:
                continue  # removed, re-registered (it has a newer entry), or disconnected
            if agent.state == AgentState.ACTIVE:
                agent.send_encoded(PING_RECORD)
            agent.next_ping = current + interval
            schedule.append((agent.next_ping, agent_id))

    def check_agents(self) -> None:
        """Mark agents silent for too long unreachable; expire registry agents that never came back."""
        master = self.master
        current = now()
        silence_limit = master.settings.agent_ping_timeout * master.settings.max_agent_ping_timeouts
        for agent in list(master.agents.values()):
            if (
                agent.state in (AgentState.ACTIVE, AgentState.DISCONNECTED)
                and current - agent.last_seen > silence_limit
            ):
                master.remove_agent(agent.agent_id, f"did not answer pings for {silence_limit:.0f}s")
        master.recovery.expire_agents_not_back(current)
