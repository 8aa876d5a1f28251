"""The allocator: hierarchical Dominant Resource Fairness, in batches, with filters and suppression.

Pure bookkeeping with no I/O: the master tells it what exists (agents, frameworks, what is allocated)
and asks `allocate(now)` for the next batch of offers. Like Mesos's hierarchical allocator:

- roles are ordered by weighted dominant share (allocated / cluster total, the largest over resource
  kinds, divided by the role's weight), frameworks inside a role by their own dominant share;
- an agent's whole allocatable remainder goes to one framework at a time (unreserved resources plus
  those reserved for the framework's role), and offered resources count as allocated;
- a framework that declines resources with `refuse_seconds` is not offered a subset of them on that
  agent again until the filter expires; REVIVE clears its filters; SUPPRESS stops offers to a role;
- nothing smaller than one of the minimum allocatable quantities is offered.

It scales by doing work only where something changed: `_candidates` holds the agents whose free
resources might be offerable (new agent, resources recovered, filter expired, a framework revived or
arrived); a cycle with no candidates costs nothing, and an agent that nobody can use leaves the set
until something changes for it. `wake_all()` makes every agent with free resources a candidate again
(the master's slow safety pass).

A cycle can also run in slices, so that a master with 50,000 agents keeps serving requests while it
allocates: `begin_cycle(now)` takes the candidates, `allocate_slice(cycle, max_agents)` decides for the
next few of them (the master sends those offers and yields to its event loop in between), and
`abort_cycle(cycle)` gives back what was not reached. Each slice orders the frameworks afresh and looks
each agent up again, so agents and frameworks removed, and resources taken, between slices are seen;
within a slice, as in one whole cycle, each agent goes to whoever is furthest behind at that moment.
`allocate(now)` is one whole cycle in one piece.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from mesolite.resources import DEFAULT_ROLE, Resources, parse_resources

DEFAULT_MIN_ALLOCATABLE = "cpus:0.01|mem:32"
DEFAULT_REFUSE_SECONDS = 5.0
# Mesos caps filters at one year; anything larger is treated as that.
MAX_REFUSE_SECONDS = 365 * 24 * 3600.0
ALLOCATABLE_MEMO_SIZE = 65_536
NO_RESOURCES = Resources()


def parse_min_allocatable(text: str) -> list[Resources]:
    """`cpus:0.01|mem:32`: resources are offerable when they hold at least one of the alternatives."""
    return [parse_resources(part) for part in text.split("|") if part.strip()]


@dataclass
class AgentSlot:
    agent_id: str
    total: Resources
    available: Resources
    active: bool = True


@dataclass
class FrameworkSlot:
    framework_id: str
    roles: tuple[str, ...]
    active: bool = True
    suppressed_roles: set[str] = field(default_factory=set)
    # agent id -> [(expiry, refused resources)]
    filters: dict[str, list[tuple[float, Resources]]] = field(default_factory=dict)
    # role -> scalar name -> allocated quantity (offered or used)
    allocated: dict[str, dict[str, float]] = field(default_factory=dict)


class AllocationCycle:
    """One cycle's agents, in the order they are considered, and how far the cycle got."""

    __slots__ = ("agent_ids", "now", "position", "shuffle")

    def __init__(self, now: float, agent_ids: list[str], shuffle: bool = False):
        self.now = now
        self.agent_ids = agent_ids
        self.position = 0
        # Shuffled as the cycle goes (Fisher-Yates, one position at a time), not up front: shuffling 50,000
        # ids at once held the event loop for tens of milliseconds before the first slice.
        self.shuffle = shuffle

    @property
    def done(self) -> bool:
        return self.position >= len(self.agent_ids)

    @property
    def remaining(self) -> int:
        return len(self.agent_ids) - self.position


class Allocation(NamedTuple):
    """A decision of one cycle: offer `resources` on `agent_id` to `framework_id` for `role`.

    A named tuple: a cycle at 50,000 agents makes 50,000 of them, and a frozen dataclass costs twice as much."""

    framework_id: str
    role: str
    agent_id: str
    resources: Resources


class Allocator:
    def __init__(
        self,
        min_allocatable: Iterable[Resources] | None = None,
        role_weights: dict[str, float] | None = None,
        shuffle: bool = True,
    ):
        self.min_allocatable = list(min_allocatable or parse_min_allocatable(DEFAULT_MIN_ALLOCATABLE))
        self.role_weights = dict(role_weights or {})
        self.shuffle = shuffle
        self.agents: dict[str, AgentSlot] = {}
        self.frameworks: dict[str, FrameworkSlot] = {}
        self.cluster_total: dict[str, float] = {}
        # role -> scalar name -> allocated, over all frameworks of the role
        self.role_allocated: dict[str, dict[str, float]] = {}
        # role -> framework ids subscribed to it
        self.role_members: dict[str, set[str]] = {}
        self._candidates: set[str] = set()
        # Agents being drained (DRAIN_AGENT): never offered, whether connected or not, until reactivated.
        self.draining: set[str] = set()
        self._filter_expiries: list[tuple[float, str, str]] = []  # (expiry, framework id, agent id)
        # id(resources) -> (resources, whether offerable): a free agent offers the same Resources object cycle
        # after cycle (kept here, so that its id is not reused while the entry lives); bounded by clearing.
        self._allocatable_memo: dict[int, tuple[Resources, bool]] = {}

    # -- agents ---------------------------------------------------------------------------------

    def add_agent(self, agent_id: str, total: Resources, used: Resources | None = None, active: bool = True) -> None:
        """Add an agent; `used` is what its running tasks already hold (their frameworks call `track`)."""
        self.agents[agent_id] = AgentSlot(agent_id, total, total - (used or Resources()), active)
        _add_scalars(self.cluster_total, total)
        self._candidates.add(agent_id)

    def remove_agent(self, agent_id: str) -> None:
        slot = self.agents.pop(agent_id, None)
        if slot is None:
            return
        _subtract_scalars(self.cluster_total, slot.total)
        self._candidates.discard(agent_id)
        for framework in self.frameworks.values():
            framework.filters.pop(agent_id, None)

    def set_agent_active(self, agent_id: str, active: bool) -> None:
        slot = self.agents.get(agent_id)
        if slot is not None and slot.active != active:
            slot.active = active
            if active:
                self._candidates.add(agent_id)

    def set_agent_draining(self, agent_id: str, draining: bool) -> None:
        if draining:
            self.draining.add(agent_id)
        elif agent_id in self.draining:
            self.draining.discard(agent_id)
            if agent_id in self.agents:
                self._candidates.add(agent_id)

    # -- frameworks -----------------------------------------------------------------------------

    def add_framework(self, framework_id: str, roles: Iterable[str], suppressed_roles: Iterable[str] = ()) -> None:
        roles = tuple(roles) or (DEFAULT_ROLE,)
        existing = self.frameworks.get(framework_id)
        if existing is not None:
            self.update_framework(framework_id, roles, suppressed_roles)
            self.set_framework_active(framework_id, True)
            return
        self.frameworks[framework_id] = FrameworkSlot(framework_id, roles, suppressed_roles=set(suppressed_roles))
        for role in roles:
            self.role_members.setdefault(role, set()).add(framework_id)
        self._wake_all()

    def update_framework(self, framework_id: str, roles: Iterable[str], suppressed_roles: Iterable[str]) -> None:
        framework = self.frameworks[framework_id]
        for role in framework.roles:
            self.role_members.get(role, set()).discard(framework_id)
        framework.roles = tuple(roles) or (DEFAULT_ROLE,)
        framework.suppressed_roles = set(suppressed_roles)
        for role in framework.roles:
            self.role_members.setdefault(role, set()).add(framework_id)
        self._wake_all()

    def remove_framework(self, framework_id: str) -> None:
        """Forget a framework; the master recovers its offers and tasks' resources first (or after)."""
        framework = self.frameworks.pop(framework_id, None)
        if framework is None:
            return
        for role in framework.roles:
            members = self.role_members.get(role)
            if members is not None:
                members.discard(framework_id)
        for role, scalars in framework.allocated.items():
            role_total = self.role_allocated.get(role, {})
            for name, quantity in scalars.items():
                role_total[name] = max(0.0, role_total.get(name, 0.0) - quantity)

    def set_framework_active(self, framework_id: str, active: bool) -> None:
        framework = self.frameworks.get(framework_id)
        if framework is not None and framework.active != active:
            framework.active = active
            if active:
                self._wake_all()

    def suppress(self, framework_id: str, roles: Iterable[str] | None = None) -> None:
        framework = self.frameworks.get(framework_id)
        if framework is not None:
            framework.suppressed_roles |= set(roles or framework.roles)

    def revive(self, framework_id: str, roles: Iterable[str] | None = None) -> None:
        """Clear the framework's filters and un-suppress `roles` (all its roles by default)."""
        framework = self.frameworks.get(framework_id)
        if framework is None:
            return
        framework.suppressed_roles -= set(roles or framework.roles)
        framework.filters.clear()
        self._wake_all()

    # -- allocations ----------------------------------------------------------------------------

    def track(self, framework_id: str, role: str, agent_id: str, resources: Resources) -> None:
        """Count resources already in use on an agent (a re-registered agent's tasks) as allocated."""
        slot = self.agents.get(agent_id)
        if slot is not None:
            slot.available = slot.available - resources
        self._charge(framework_id, role, resources)

    def recover(
        self,
        framework_id: str,
        role: str,
        agent_id: str,
        resources: Resources,
        refuse_seconds: float | None = None,
        now: float = 0.0,
    ) -> None:
        """Give resources back (declined, unused, or freed by a finished task), optionally filtering them."""
        self._charge(framework_id, role, resources, sign=-1.0)
        slot = self.agents.get(agent_id)
        if slot is None:
            return
        slot.available = _clamp(slot.available + resources, slot.total)
        self._candidates.add(agent_id)
        framework = self.frameworks.get(framework_id)
        if refuse_seconds and refuse_seconds > 0 and framework is not None:
            expiry = now + min(refuse_seconds, MAX_REFUSE_SECONDS)
            framework.filters.setdefault(agent_id, []).append((expiry, resources))
            heapq.heappush(self._filter_expiries, (expiry, framework_id, agent_id))

    def dominant_share(self, scalars: dict[str, float]) -> float:
        share = 0.0
        for name, quantity in scalars.items():
            total = self.cluster_total.get(name, 0.0)
            if total > 0:
                share = max(share, quantity / total)
        return share

    def role_share(self, role: str) -> float:
        return self.dominant_share(self.role_allocated.get(role, {})) / self.role_weights.get(role, 1.0)

    def framework_share(self, framework_id: str, role: str) -> float:
        return self.dominant_share(self.frameworks[framework_id].allocated.get(role, {}))

    def has_pending_work(self, now: float) -> bool:
        return bool(self._candidates) or bool(self._filter_expiries and self._filter_expiries[0][0] <= now)

    def allocate(self, now: float) -> list[Allocation]:
        """One whole allocation cycle: the offers to make now, agent by agent, in DRF order."""
        cycle = self.begin_cycle(now)
        allocations: list[Allocation] = []
        while not cycle.done:
            allocations += self.allocate_slice(cycle)
        return allocations

    def begin_cycle(self, now: float) -> AllocationCycle:
        """Take the candidates for a cycle (in random order, or sorted without `shuffle`)."""
        self._expire_filters(now)
        if not self._candidates:
            return AllocationCycle(now, [])
        candidates = list(self._candidates)  # agents removed since are skipped when their turn comes
        self._candidates = set()
        if not self.shuffle:
            candidates.sort()
        return AllocationCycle(now, candidates, self.shuffle)

    def abort_cycle(self, cycle: AllocationCycle) -> None:
        """The agents the cycle did not reach are candidates again (the next cycle considers them)."""
        self._candidates.update(cycle.agent_ids[cycle.position :])
        cycle.position = len(cycle.agent_ids)

    def allocate_slice(self, cycle: AllocationCycle, max_agents: int | None = None) -> list[Allocation]:
        """Decide for the cycle's next `max_agents` agents (all that are left by default)."""
        order = self._ordered_clients()
        if not order:
            # Nobody to offer to: the candidates are dropped; a framework arriving or reviving wakes them all.
            cycle.position = len(cycle.agent_ids)
            return []
        now = cycle.now
        agent_ids = cycle.agent_ids
        end = len(agent_ids) if max_agents is None else min(len(agent_ids), cycle.position + max_agents)
        allocations: list[Allocation] = []
        agents = self.agents
        frameworks = self.frameworks
        draining = self.draining
        last = len(agent_ids) - 1
        for index in range(cycle.position, end):
            if cycle.shuffle and index < last:
                other = min(last, index + int(random.random() * (last - index + 1)))  # randint's result, faster
                agent_ids[index], agent_ids[other] = agent_ids[other], agent_ids[index]
            agent_id = agent_ids[index]
            # Looked up again: the agent may have gone, or changed, since the cycle began.
            slot = agents.get(agent_id)
            if slot is None or not slot.active or slot.available.is_empty() or agent_id in draining:
                continue
            allocated_here = False
            for role, framework_id in order:
                framework = frameworks[framework_id]
                offerable = slot.available.allocatable_to(role)
                if offerable.is_empty() or not self._is_allocatable(offerable):
                    continue
                if framework.filters and self._is_filtered(framework, agent_id, offerable, now):
                    continue
                remaining = slot.available - offerable
                # One shared empty bag for every fully offered agent: a new one each (three objects that live
                # until the offer comes back) gave the cyclic garbage collector 150,000 objects to walk per
                # cycle at 50,000 agents, and a full collection inside the cycle.
                slot.available = NO_RESOURCES if remaining.is_empty() else remaining
                self._charge(framework_id, role, offerable)
                allocations.append(Allocation(framework_id, role, agent_id, offerable))
                allocated_here = True
                if slot.available.is_empty():
                    break
            if allocated_here and len(order) > 1:
                # Shares changed: the next agent goes to whoever is furthest behind now.
                order = self._ordered_clients()
        cycle.position = end
        return allocations

    # -- internals ------------------------------------------------------------------------------

    def _ordered_clients(self) -> list[tuple[str, str]]:
        """(role, framework id) pairs that may receive offers, roles then frameworks by ascending share."""
        order = []
        for role in sorted(self.role_members, key=lambda r: (self.role_share(r), r)):
            members = [
                framework_id
                for framework_id in self.role_members[role]
                if self.frameworks[framework_id].active and role not in self.frameworks[framework_id].suppressed_roles
            ]
            members.sort(key=lambda f: (self.framework_share(f, role), f))
            order += [(role, framework_id) for framework_id in members]
        return order

    def _is_allocatable(self, resources: Resources) -> bool:
        memo = self._allocatable_memo.get(id(resources))
        if memo is not None and memo[0] is resources:
            return memo[1]
        if len(self._allocatable_memo) >= ALLOCATABLE_MEMO_SIZE:
            self._allocatable_memo.clear()
        allocatable = self._compute_allocatable(resources)
        self._allocatable_memo[id(resources)] = (resources, allocatable)
        return allocatable

    def _compute_allocatable(self, resources: Resources) -> bool:
        if not self.min_allocatable:
            return True
        scalars = resources.scalars()
        for minimum in self.min_allocatable:
            needed = minimum.scalars()
            if all(scalars.get(name, 0.0) >= quantity for name, quantity in needed.items()):
                return True
        # Non-scalar resources alone (e.g. only ports left) are not worth an offer, as in Mesos.
        return False

    def _is_filtered(self, framework: FrameworkSlot, agent_id: str, resources: Resources, now: float) -> bool:
        filters = framework.filters.get(agent_id)
        if not filters:
            return False
        live = [(expiry, refused) for expiry, refused in filters if expiry > now]
        if live:
            framework.filters[agent_id] = live
        else:
            del framework.filters[agent_id]
        return any(refused.contains(resources) for _expiry, refused in live)

    def _expire_filters(self, now: float) -> None:
        while self._filter_expiries and self._filter_expiries[0][0] <= now:
            _expiry, _framework_id, agent_id = heapq.heappop(self._filter_expiries)
            if agent_id in self.agents:
                self._candidates.add(agent_id)

    def wake_all(self) -> None:
        """Every agent with free resources is a candidate again (the master's slow safety pass)."""
        self._wake_all()

    def _wake_all(self) -> None:
        self._candidates.update(agent_id for agent_id, slot in self.agents.items() if not slot.available.is_empty())

    def _charge(self, framework_id: str, role: str, resources: Resources, sign: float = 1.0) -> None:
        scalars = resources.scalars()
        if not scalars:
            return
        role_total = self.role_allocated.get(role)
        if role_total is None:
            role_total = self.role_allocated[role] = {}
        _accumulate(role_total, scalars, sign)
        framework = self.frameworks.get(framework_id)
        if framework is not None:
            allocated = framework.allocated.get(role)
            if allocated is None:
                allocated = framework.allocated[role] = {}
            _accumulate(allocated, scalars, sign)


def _accumulate(target: dict[str, float], scalars: dict[str, float], sign: float) -> None:
    """Add (or take away) scalars, rounded so that sums of offers and recoveries do not drift, never below 0."""
    for name, quantity in scalars.items():
        value = round(target.get(name, 0.0) + sign * quantity, 6)
        target[name] = value if value > 0.0 else 0.0


def _add_scalars(target: dict[str, float], resources: Resources) -> None:
    for name, quantity in resources.scalars().items():
        target[name] = target.get(name, 0.0) + quantity


def _subtract_scalars(target: dict[str, float], resources: Resources) -> None:
    for name, quantity in resources.scalars().items():
        target[name] = max(0.0, target.get(name, 0.0) - quantity)


def _clamp(resources: Resources, total: Resources) -> Resources:
    """Never more available than the agent has (a double recovery must not mint resources).

    A fully free agent gets its `total` object back, whose derived forms (offer JSON) are cached.
    """
    if resources == total:
        return total
    if total.contains(resources):
        return resources
    return total - (total - resources)
