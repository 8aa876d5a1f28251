"""The leading master's state and every operation on it: frameworks, agents, offers, tasks.

One `Master` exists per term of leadership: it is created when this process is elected, recovers
what the registry holds, and is discarded (streams closed, timers cancelled) the moment leadership
is lost. Operations are synchronous between awaits, so no locks are needed; HTTP handlers translate
requests into these calls and `CallError`s back into status codes. Two parts it owns live apart:
`liveness.py` (PINGs, and which agents stopped answering) and `recovery.py` (the registry records, and how a
new leader rebuilds its state from them and from re-registering agents).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gc
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

from mesolite.ids import IdGenerator
from mesolite.master import validation
from mesolite.master.admission import AgentAdmission
from mesolite.master.agents import AgentState, RegisteredAgent
from mesolite.master.allocator import Allocation, Allocator
from mesolite.master.frameworks import MAX_COMPLETED_TASKS, Framework, framework_roles
from mesolite.master.liveness import AgentLiveness
from mesolite.master.maintenance import Maintenance
from mesolite.master.metrics import Timer
from mesolite.master.offers import Offer, OfferEncoder, expired_offers, offers_event
from mesolite.master.recovery import Recovery
from mesolite.master.registry import Registry
from mesolite.master.streams import EventStream
from mesolite.master.tasks import Task, task_user
from mesolite.master.validation import (
    CallError,
    id_list,
    launched_tasks,
    refuse_seconds,
    requested_roles,
    task_problem,
    task_resources,
)
from mesolite.protocol.v1 import (
    event,
    id_value,
    now,
    task_status,
    value_of,
)
from mesolite.resources import ResourceError, Resources
from mesolite.security.authorization import Authorizer

log = logging.getLogger(__name__)

MAX_COMPLETED_FRAMEWORKS = 50
MAX_OFFERS_PER_EVENT = 500
# Within an on-demand allocation, wait this long for more triggers so that bursts make one cycle.
ALLOCATION_COALESCE_SECONDS = 0.005
# An allocation cycle gives the event loop back after this much work (deciding and sending offers), so that
# requests, pings and the leadership lease are served while a cycle over 50,000 agents runs (issue 16: never
# blocked more than 50 ms). A request may wait for up to three slices: a task woken by a timer or by I/O runs
# an iteration or two of the loop after its wake-up, and a slice runs in each. The clock is read between steps
# of at most ALLOCATION_STEP_AGENTS agents (a step costs 1-2 ms at ~20 us per agent, offers included).
ALLOCATION_SLICE_SECONDS = 0.01
ALLOCATION_STEP_AGENTS = 64
# Now and then every agent with free resources is considered again, whether or not anything was noticed to
# change for it: a safety net under the allocator's bookkeeping of what changed (normally it offers nothing).
ALLOCATION_FULL_PASS_INTERVAL = 300.0
# Python's cyclic garbage collector walks every live object in a full collection: with 10,000 agents and as
# many tasks (over a million objects) that stopped the whole master for 1-2 s, several times a minute under
# load. The master's state is long-lived and freed by reference counting, so now and then the young
# generations are collected and the survivors frozen (out of the collector's sight); once an hour, and when
# leadership ends, they are thawed so that a full collection still finds cycles among old objects.
GC_FREEZE_INTERVAL = 10.0
GC_THAW_INTERVAL = 3600.0


@dataclass
class MasterSettings:
    allocation_interval: float = 1.0
    agent_ping_timeout: float = 15.0
    max_agent_ping_timeouts: int = 5
    agent_reregister_timeout: float = 600.0
    offer_timeout: float | None = None
    heartbeat_interval: float = 15.0
    max_completed_frameworks: int = MAX_COMPLETED_FRAMEWORKS
    max_completed_tasks_per_framework: int = MAX_COMPLETED_TASKS
    min_allocatable: list[Resources] | None = None
    role_weights: dict[str, float] = field(default_factory=dict)
    # The ACLs (`--acls`) the master's own decisions follow: which roles and users a framework's principal may use.
    authorizer: Authorizer = field(default_factory=Authorizer.open)

    @classmethod
    def from_flags(
        cls, flags: SimpleNamespace, min_allocatable, role_weights, authorizer: Authorizer | None = None
    ) -> MasterSettings:
        return cls(
            allocation_interval=flags.allocation_interval,
            agent_ping_timeout=flags.agent_ping_timeout,
            max_agent_ping_timeouts=flags.max_agent_ping_timeouts,
            agent_reregister_timeout=flags.agent_reregister_timeout,
            offer_timeout=flags.offer_timeout,
            heartbeat_interval=flags.framework_heartbeat_interval,
            max_completed_frameworks=flags.max_completed_frameworks,
            max_completed_tasks_per_framework=flags.max_completed_tasks_per_framework,
            min_allocatable=min_allocatable,
            role_weights=role_weights,
            authorizer=authorizer or Authorizer.open(),
        )


class Master:
    def __init__(
        self,
        master_info: dict,
        ids: IdGenerator,
        settings: MasterSettings,
        registry: Registry | None = None,
        is_leading: Callable[[], bool] = lambda: True,
    ):
        self.master_info = master_info
        # False the moment this process may no longer act as leader: background work checks it, since
        # only requests pass through the HTTP layer's check.
        self.is_leading = is_leading
        self.ids = ids
        self.settings = settings
        self.registry = registry
        self.allocator = Allocator(settings.min_allocatable, settings.role_weights)
        self.frameworks: dict[str, Framework] = {}
        self.completed_frameworks: deque[Framework] = deque(maxlen=settings.max_completed_frameworks)
        self.removed_framework_ids: set[str] = set()
        self.agents: dict[str, RegisteredAgent] = {}
        self.removed_agent_ids: set[str] = set()
        self.agents_by_address: dict[tuple[str, int], str] = {}
        self.offers: dict[str, Offer] = {}
        self.offer_encoder = OfferEncoder()
        self.counters: Counter[str] = Counter()
        self.elected_time = time.time()
        self.allocation_run_timer = Timer()
        self.liveness = AgentLiveness(self)
        self.recovery = Recovery(self)
        self.admission = AgentAdmission(self)
        self.maintenance = Maintenance(self)
        if registry is not None:
            registry.maintenance_snapshot = self.maintenance.record
        self._wake_allocator = asyncio.Event()
        self._loops: list[asyncio.Task] = []
        self.stopped = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self.registry is not None:
            agents, frameworks = await self.registry.load()
            self.recovery.recover(agents, frameworks)
            self.maintenance.restore(await self.registry.load_maintenance())
            self.registry.start()
        for name, loop in (
            ("allocation", self._allocation_loop),
            ("agent-pings", self.liveness.run),
            ("heartbeats", self._heartbeat_loop),
            ("garbage-collection", self._garbage_collection_loop),
        ):
            self._loops.append(asyncio.create_task(loop(), name=f"master-{name}"))
        log.info(
            "master %s leads: %d agents and %d frameworks recovered",
            self.master_info["id"],
            len(self.agents),
            len(self.frameworks),
        )

    async def stop(self, reason: str) -> None:
        """Stop acting as leader: close every stream and forget everything (the next leader recovers)."""
        if self.stopped:
            return
        self.stopped = True
        for loop in self._loops:
            loop.cancel()
        gc.unfreeze()  # what this term kept is garbage now: let the collector see it again
        for framework in list(self.frameworks.values()):
            framework.cancel_failover_timer()
            if framework.connected:
                # No ERROR: a failover is not a framework error (ERROR means "removed", and a scheduler stops
                # for good on it). The stream just ends; the scheduler finds the next leader and re-subscribes.
                log.info("closing the stream of framework %s: %s", framework.framework_id, reason)
                framework.stream.close()
        for agent in self.agents.values():
            if agent.stream is not None:
                agent.stream.close()
        if self.registry is not None:
            await self.registry.stop()

    # ------------------------------------------------------------------ frameworks: subscribe

    def validate_subscribe(self, call: dict) -> tuple[dict, str | None]:
        return validation.validate_subscribe(call)

    def authorize_roles(self, info: dict) -> None:
        """`register_frameworks`: the framework's principal (FrameworkInfo.principal) may use each of its roles,
        else a 403 naming the first role refused."""
        authorizer = self.settings.authorizer
        if authorizer.is_open:
            return
        principal = info.get("principal") or None
        for role in framework_roles(info):
            if not authorizer.allows("register_frameworks", principal, role):
                raise CallError(
                    f"Not authorized to use role '{role}': principal '{principal or ''}' may not register "
                    "frameworks in it (register_frameworks ACL)",
                    403,
                )

    def subscribe(self, call: dict, stream: EventStream) -> Framework | None:
        """Attach a SUBSCRIBE's stream: a new framework, or a known one failing over to this stream."""
        info, framework_id = self.validate_subscribe(call)
        suppressed = call["subscribe"].get("suppressed_roles") or []
        if framework_id in self.removed_framework_ids:
            stream.send(event("ERROR", {"message": f"Framework {framework_id} has been removed"}))
            stream.close()
            return None
        if framework_id is None:
            framework_id = self.ids.framework_id()
        info = dict(info)
        info["id"] = id_value(framework_id)
        framework = self.frameworks.get(framework_id)
        if framework is None:
            framework = self.new_framework(framework_id, info)
            self.frameworks[framework_id] = framework
            self.allocator.add_framework(framework_id, framework.roles, suppressed)
            self.counters["master/frameworks_registered"] += 1
            log.info("framework %s (%s) subscribed", framework_id, info.get("name"))
        else:
            old_stream = framework.stream
            framework.stream = None
            if old_stream is not None and not old_stream.closed:
                old_stream.send(event("ERROR", {"message": "Framework failed over"}))
                old_stream.close()
            framework.cancel_failover_timer()
            self._remove_offers_of(framework, rescind=False)
            framework.info = info
            framework.recovered = False
            framework.reregistered_time = now()
            framework.unregistered_time = None
            self.allocator.add_framework(framework_id, framework.roles, suppressed)
            self.counters["master/frameworks_reregistered"] += 1
            log.info("framework %s (%s) re-subscribed (failover)", framework_id, info.get("name"))
            # As Mesos's UpdateFrameworkMessage: agents re-send the updates the old scheduler did not acknowledge
            # at once (with the task's latest state), not at their next retry, seconds or minutes away.
            update = event("UPDATE_FRAMEWORK", {"framework_id": id_value(framework_id), "framework_info": info})
            for agent in self.agents.values():
                if framework_id in agent.task_ids:
                    agent.send(update)
        framework.active = True
        framework.stream = stream
        framework.stream_id = stream.name
        stream.set_close_callback(lambda closed: self._framework_stream_closed(framework_id, closed))
        stream.send(
            event(
                "SUBSCRIBED",
                {
                    "framework_id": id_value(framework_id),
                    "heartbeat_interval_seconds": self.settings.heartbeat_interval,
                    "master_info": self.master_info,
                },
            )
        )
        self.persist_framework(framework_id)
        self.trigger_allocation()
        return framework

    def new_framework(self, framework_id: str, info: dict, **fields) -> Framework:
        completed: deque[Task] = deque(maxlen=self.settings.max_completed_tasks_per_framework)
        return Framework(framework_id, info, completed_tasks=completed, **fields)

    def _framework_stream_closed(self, framework_id: str, stream: EventStream) -> None:
        framework = self.frameworks.get(framework_id)
        if self.stopped or framework is None or framework.stream is not stream:
            return
        log.info("framework %s disconnected; failover timeout %.0fs", framework_id, framework.failover_timeout)
        framework.stream = None
        framework.active = False
        framework.unregistered_time = now()
        self.allocator.set_framework_active(framework_id, False)
        self._remove_offers_of(framework, rescind=False)
        self.start_failover_timer(framework, framework.failover_timeout)

    def start_failover_timer(self, framework: Framework, timeout: float) -> None:
        framework.cancel_failover_timer()
        loop = asyncio.get_running_loop()
        framework.failover_timer = loop.call_later(
            timeout, self.remove_framework, framework.framework_id, "failover timeout elapsed"
        )

    # ------------------------------------------------------------------ frameworks: calls

    def framework_for_call(self, call: dict, stream_id: str | None) -> Framework:
        framework_id = value_of(call, "framework_id")
        if framework_id is None:
            raise CallError("Expecting 'framework_id' to be present")
        framework = self.frameworks.get(framework_id)
        if framework is None:
            if framework_id in self.removed_framework_ids:
                raise CallError(f"Framework {framework_id} has been removed", status=403)
            raise CallError(f"Framework {framework_id} cannot be found")
        if not framework.connected:
            raise CallError(f"Framework {framework_id} is not subscribed", status=403)
        if stream_id is None:
            raise CallError("All non-subscribe calls should include the 'Mesos-Stream-Id' header")
        if stream_id != framework.stream_id:
            raise CallError(
                f"The stream ID '{stream_id}' included in this request didn't match the stream ID currently "
                f"associated with framework ID {framework_id}"
            )
        return framework

    def teardown(self, framework: Framework) -> None:
        self.remove_framework(framework.framework_id, "torn down by the framework")

    def remove_framework(self, framework_id: str, reason: str) -> None:
        if self.stopped or not self.is_leading():
            return
        framework = self.frameworks.pop(framework_id, None)
        if framework is None:
            return
        log.info("removing framework %s (%s): %s", framework_id, framework.info.get("name"), reason)
        framework.cancel_failover_timer()
        self._remove_offers_of(framework, rescind=False)
        agents_with_tasks = set()
        for task in list(framework.tasks.values()):
            agents_with_tasks.add(task.agent_id)
            if not task.terminal:
                self._release(task)
                task.state = "TASK_KILLED"
                task.statuses.append({"state": "TASK_KILLED", "timestamp": now()})
                self.counters["master/tasks_killed"] += 1
            self.forget_task(framework, task)
        for agent_id in agents_with_tasks:
            agent = self.agents.get(agent_id)
            if agent is not None:
                agent.send(event("SHUTDOWN_FRAMEWORK", {"framework_id": id_value(framework_id)}))
        self.allocator.remove_framework(framework_id)
        framework.active = False
        framework.unregistered_time = now()
        if framework.connected:
            framework.stream.close()
        framework.stream = None
        self.completed_frameworks.append(framework)
        self.removed_framework_ids.add(framework_id)
        self.persist_framework(framework_id)
        self.trigger_allocation()

    def accept(self, framework: Framework, accept: dict) -> None:
        """ACCEPT: launch the operations' tasks on the offers, all or nothing as far as the call goes.

        `validation.validate_call` has checked the whole call before this runs (a malformed one never claims
        an offer). From here on, every resource of the claimed offers ends up in exactly one place: used by a
        launched task, or back in the allocator — also when something fails half-way."""
        offer_ids = id_list(accept.get("offer_ids"), "accept.offer_ids")
        operations = accept.get("operations") or []
        if not isinstance(operations, list) or not all(isinstance(operation, dict) for operation in operations):
            raise CallError("accept.operations: expected an array of objects")
        for index, operation in enumerate(operations):
            if operation.get("type") not in validation.LAUNCH_OPERATIONS:
                raise CallError(
                    f"accept.operations[{index}].type {operation.get('type')!r} is not supported "
                    "(LAUNCH and LAUNCH_GROUP are)"
                )
        refuse = refuse_seconds(accept.get("filters"), "accept.filters")
        offers, error = self._claim_offers(framework, offer_ids)
        offered = _sum(offer.resources for offer in offers)
        if error is None and not offer_ids:
            error = "No offers were specified"
        if error is not None:
            # Every task of the call is dropped; offers that were valid go back without a filter.
            for task_info in launched_tasks(operations):
                state = "TASK_DROPPED" if framework.partition_aware else "TASK_LOST"
                self._master_update(framework, task_info, state, "REASON_INVALID_OFFERS", error)
            for offer in offers:
                self.allocator.recover(framework.framework_id, offer.role, offer.agent_id, offer.resources)
            self.trigger_allocation()
            return
        agent = self.agents[offers[0].agent_id]
        role = offers[0].role
        remaining = offered
        try:
            for operation in operations:
                if operation["type"] == "LAUNCH":
                    for task_info in (operation.get("launch") or {}).get("task_infos") or []:
                        remaining = self._launch(framework, agent, role, task_info, remaining)
                else:
                    group = operation.get("launch_group") or {}
                    remaining = self._launch_group(framework, agent, role, group, remaining)
        finally:
            # Whatever no task took goes back, even if a launch failed unexpectedly: never a leaked offer.
            if not remaining.is_empty():
                self.allocator.recover(
                    framework.framework_id, role, agent.agent_id, remaining, refuse, time.monotonic()
                )
            self.trigger_allocation()

    def decline(self, framework: Framework, decline: dict) -> None:
        offer_ids = id_list(decline.get("offer_ids"), "decline.offer_ids")
        refuse = refuse_seconds(decline.get("filters"), "decline.filters")
        for offer_id in offer_ids:
            offer = self.offers.get(offer_id)
            if offer is None or offer.framework_id != framework.framework_id:
                continue  # Mesos ignores declines of unknown offers too
            self._drop_offer(offer)
            self.allocator.recover(
                framework.framework_id, offer.role, offer.agent_id, offer.resources, refuse, time.monotonic()
            )
        self.trigger_allocation()

    def revive(self, framework: Framework, body: dict | None) -> None:
        roles = requested_roles(body, framework.roles)
        self.allocator.revive(framework.framework_id, roles)
        self.trigger_allocation()

    def suppress(self, framework: Framework, body: dict | None) -> None:
        self.allocator.suppress(framework.framework_id, requested_roles(body, framework.roles))

    def kill(self, framework: Framework, kill: dict) -> None:
        task_id = value_of(kill, "task_id")
        if task_id is None:
            raise CallError("Expecting 'kill.task_id.value' to be present")
        self.counters["master/messages_kill_task"] += 1
        task = framework.tasks.get(task_id)
        if task is None:
            # As Mesos does: a kill of a task the master does not know is answered as a reconciliation.
            status = self._reconcile_one(framework, task_id, value_of(kill, "agent_id"))
            if status is not None:
                framework.send(event("UPDATE", {"status": status}))
            return
        if task.terminal:
            return
        agent = self.agents.get(task.agent_id)
        body = {"framework_id": id_value(framework.framework_id), "task_id": id_value(task_id)}
        if "kill_policy" in kill:
            body["kill_policy"] = kill["kill_policy"]
        if agent is not None:
            agent.send(event("KILL_TASK", body))

    def shutdown_executor(self, framework: Framework, shutdown: dict) -> None:
        executor_id = value_of(shutdown, "executor_id")
        agent_id = value_of(shutdown, "agent_id")
        if executor_id is None or agent_id is None:
            raise CallError("Expecting 'shutdown.executor_id' and 'shutdown.agent_id' to be present")
        agent = self.agents.get(agent_id)
        if agent is None:
            return
        for task in framework.tasks.values():
            if task.agent_id == agent_id and task.executor_id == executor_id and not task.terminal:
                agent.send(
                    event(
                        "KILL_TASK",
                        {"framework_id": id_value(framework.framework_id), "task_id": id_value(task.task_id)},
                    )
                )

    def acknowledge(self, framework: Framework, acknowledge: dict) -> None:
        task_id = value_of(acknowledge, "task_id")
        agent_id = value_of(acknowledge, "agent_id")
        uuid = acknowledge.get("uuid")
        if task_id is None or agent_id is None or not isinstance(uuid, str):
            raise CallError("Expecting 'acknowledge.agent_id', 'acknowledge.task_id' and 'acknowledge.uuid'")
        try:
            base64.b64decode(uuid, validate=True)
        except (binascii.Error, ValueError):
            raise CallError(f"acknowledge.uuid '{uuid}' is not base64") from None
        agent = self.agents.get(agent_id)
        if agent is not None:
            agent.send(
                event(
                    "ACKNOWLEDGE",
                    {"framework_id": id_value(framework.framework_id), "task_id": id_value(task_id), "uuid": uuid},
                )
            )
        task = framework.tasks.get(task_id)
        # Forget the task once its terminal update is acknowledged: not when an older update is (the task's
        # state may already be terminal through the agent's `latest_state` while that update is on its way).
        if task is not None and task.acknowledged(uuid) and task.terminal:
            self.forget_task(framework, task)

    def reconcile(self, framework: Framework, reconcile: dict | None) -> None:
        requested = (reconcile or {}).get("tasks") or []
        if not isinstance(requested, list):
            raise CallError("reconcile.tasks must be a list")
        updates = []
        if not requested:
            for task in framework.tasks.values():
                updates.append(task.current_status(reason="REASON_RECONCILIATION"))
        for item in requested:
            task_id = value_of(item, "task_id")
            if task_id is None:
                raise CallError("every reconcile.tasks item needs task_id.value")
            agent_id = value_of(item, "agent_id")
            updates.append(self._reconcile_one(framework, task_id, agent_id))
        for status in updates:
            if status is not None:
                framework.send(event("UPDATE", {"status": status}))

    def _reconcile_one(self, framework: Framework, task_id: str, agent_id: str | None) -> dict | None:
        """The status that answers a reconciliation of one task, or None when nothing definite can be said."""
        task = framework.tasks.get(task_id)
        if task is not None:
            return task.current_status(reason="REASON_RECONCILIATION")
        unreachable = framework.unreachable_tasks.get(task_id)
        if unreachable is not None:
            return unreachable.current_status(reason="REASON_RECONCILIATION")
        for completed in framework.completed_tasks:
            if completed.task_id == task_id:
                return completed.current_status(reason="REASON_RECONCILIATION")
        aware = framework.partition_aware
        agent = self.agents.get(agent_id) if agent_id else self.recovery.recovered_agent_with(framework, task_id)
        if agent is not None and agent.state == AgentState.RECOVERED:
            # Known from the registry, not re-registered yet: it may still come back with the task, or be
            # declared unreachable at the re-registration timeout, which reports the task. Until then Mesos
            # stays silent, and so do we (an answer now could contradict the agent's own report).
            return None
        if agent is not None and agent.state == AgentState.UNREACHABLE:
            state = "TASK_UNREACHABLE" if aware else "TASK_LOST"
        elif agent is not None:
            state = "TASK_GONE" if aware else "TASK_LOST"
        else:
            state = "TASK_UNKNOWN" if aware else "TASK_LOST"
        return task_status(
            task_id,
            state,
            agent_id=agent_id,
            source="SOURCE_MASTER",
            reason="REASON_RECONCILIATION",
            message="Reconciliation: task is unknown to the master",
            with_uuid=False,
        )

    def message(self, framework: Framework, message: dict) -> None:
        for name in ("agent_id", "executor_id"):
            if value_of(message, name) is None:
                raise CallError(f"Expecting 'message.{name}' to be present")
        if not isinstance(message.get("data"), str):
            raise CallError("Expecting 'message.data' (base64) to be present")
        # Command executors take no framework messages; Mesos drops what an executor cannot take too.
        self.counters["master/messages_framework_to_executor"] += 1

    # ------------------------------------------------------------------ launching

    def _claim_offers(self, framework: Framework, offer_ids: list[str]) -> tuple[list[Offer], str | None]:
        """Take the named offers out of circulation; the first problem found, if any."""
        offers: list[Offer] = []
        error = None
        for offer_id in offer_ids:
            offer = self.offers.get(offer_id)
            if offer is None:
                error = error or f"Offer {offer_id} is no longer valid"
            elif offer.framework_id != framework.framework_id:
                error = error or f"Offer {offer_id} is not for framework {framework.framework_id}"
            elif offer in offers:
                error = error or f"Offer {offer_id} appears more than once"
            else:
                offers.append(offer)
        for offer in offers:
            self._drop_offer(offer)
        if error is None and len({offer.agent_id for offer in offers}) > 1:
            error = "Aggregated offers must belong to one single agent"
        if error is None and len({offer.role for offer in offers}) > 1:
            error = "Aggregated offers must be allocated to the same role"
        if error is None and offers:
            agent = self.agents.get(offers[0].agent_id)
            if agent is None or not agent.active:
                error = f"Agent {offers[0].agent_id} is not active"
        return offers, error

    def _validate_task(
        self, framework: Framework, agent: RegisteredAgent, task_info: dict, available: Resources
    ) -> tuple[Resources | None, str | None]:
        """What a task takes of `available`, or why it cannot launch (it then fails alone, with TASK_ERROR)."""
        task_id = value_of(task_info, "task_id") or ""
        known = task_id in framework.tasks or task_id in framework.unreachable_tasks
        problem = task_problem(task_info, agent.agent_id, known)
        if problem is not None:
            return None, problem
        return task_resources(task_info, available)

    def _launch(
        self, framework: Framework, agent: RegisteredAgent, role: str, task_info: dict, available: Resources
    ) -> Resources:
        refusal = self._run_tasks_refusal(framework, task_info)
        if refusal is not None:
            self._master_update(framework, task_info, "TASK_ERROR", "REASON_TASK_UNAUTHORIZED", refusal)
            return available
        resources, error = self._validate_task(framework, agent, task_info, available)
        if error is not None:
            self._master_update(framework, task_info, "TASK_ERROR", "REASON_TASK_INVALID", error)
            return available
        assert resources is not None
        # A command task runs under an executor of its own whose id is the task id (see the agent contract).
        executor_id = value_of(task_info.get("executor"), "executor_id") or value_of(task_info, "task_id") or ""
        self._add_task(framework, agent, role, task_info, resources, executor_id)
        agent.send(event("RUN_TASK", {"framework": framework.info, "task": task_info}))
        return available - resources

    def _launch_group(
        self, framework: Framework, agent: RegisteredAgent, role: str, group: dict, available: Resources
    ) -> Resources:
        executor = group["executor"]
        tasks = (group.get("task_group") or {}).get("tasks") or []
        executor_id = value_of(executor, "executor_id") or ""
        error = validation.id_problem(executor_id)
        if error is not None:
            error = f"Executor ID is invalid: {error}"
        needed = Resources()
        validated = []
        if error is None:
            try:
                needed = Resources.from_protobuf_json(executor.get("resources") or [])
            except ResourceError as problem:
                error = f"Executor has invalid resources: {problem}"
        for task_info in tasks:
            if error is not None:
                break
            # Tasks of a group run under the group's executor and may omit their command.
            checked = task_info if "command" in task_info else {**task_info, "command": {}}
            resources, error = self._validate_task(framework, agent, checked, available - needed)
            if resources is not None:
                needed = needed + resources
                validated.append((task_info, resources))
        if error is None and not tasks:
            error = "LAUNCH_GROUP has no tasks"
        refusals = [self._run_tasks_refusal(framework, task_info, executor) for task_info in tasks]
        refusal = next((item for item in refusals if item is not None), None)
        if error is None and refusal is not None:
            # A group launches whole or not at all (as in Mesos): one task the principal may not run refuses it.
            for task_info in tasks:
                self._master_update(framework, task_info, "TASK_ERROR", "REASON_TASK_UNAUTHORIZED", refusal)
            return available
        if error is None and len({value_of(task, "task_id") for task in tasks}) < len(tasks):
            error = "Task group has duplicate task IDs"
        if error is None and not available.contains(needed):
            error = f"Task group uses more resources {needed} than available {available}"
        if error is not None:
            for task_info in tasks:
                self._master_update(framework, task_info, "TASK_ERROR", "REASON_TASK_GROUP_INVALID", error)
            return available
        for task_info, resources in validated:
            self._add_task(framework, agent, role, task_info, resources, executor_id)
        agent.send(
            event("RUN_TASK_GROUP", {"framework": framework.info, "executor": executor, "task_group": {"tasks": tasks}})
        )
        return available - needed

    def _run_tasks_refusal(self, framework: Framework, task_info: dict, executor: dict | None = None) -> str | None:
        """Why the `run_tasks` ACL refuses this task, or None when the framework's principal may run it as its user.

        The subject is the framework's principal (FrameworkInfo.principal: the authenticated one when frameworks
        must authenticate), as in Mesos."""
        authorizer = self.settings.authorizer
        if authorizer.is_open:
            return None
        principal = framework.info.get("principal") or None
        user = task_user(task_info, framework.info, executor)
        if authorizer.allows("run_tasks", principal, user):
            return None
        return f"Not authorized to launch as user '{user}' (principal '{principal or ''}', run_tasks ACL)"

    def _add_task(
        self,
        framework: Framework,
        agent: RegisteredAgent,
        role: str,
        task_info: dict,
        resources: Resources,
        executor_id: str,
    ) -> Task:
        task = Task(
            task_id=value_of(task_info, "task_id") or "",
            framework_id=framework.framework_id,
            agent_id=agent.agent_id,
            executor_id=executor_id,
            role=role,
            info=task_info,
            resources=resources,
        )
        task.statuses.append({"state": "TASK_STAGING", "timestamp": task.created})
        framework.tasks[task.task_id] = task
        agent.add_task(framework.framework_id, task.task_id)
        agent.used = agent.used + resources
        self.counters["master/tasks_launched"] += 1
        self.persist_agent(agent.agent_id)
        return task

    def _master_update(self, framework: Framework, task_info: dict, state: str, reason: str, message: str) -> None:
        """A status the master itself generates for a task it never launched (no uuid: nothing to acknowledge)."""
        task_id = value_of(task_info, "task_id") if isinstance(task_info, dict) else None
        status = task_status(
            task_id or "",
            state,
            agent_id=value_of(task_info, "agent_id") if isinstance(task_info, dict) else None,
            source="SOURCE_MASTER",
            reason=reason,
            message=message,
            with_uuid=False,
        )
        self.counters[f"master/tasks_{state[5:].lower()}"] += 1
        log.info("task %s of framework %s: %s (%s)", task_id, framework.framework_id, state, message)
        framework.send(event("UPDATE", {"status": status}))

    # ------------------------------------------------------------------ tasks

    def _release(self, task: Task) -> None:
        """Give a task's resources back to the allocator (it ended, or its framework went away)."""
        agent = self.agents.get(task.agent_id)
        if agent is not None:
            agent.used = agent.used - task.resources
        self.allocator.recover(task.framework_id, task.role, task.agent_id, task.resources)
        self.trigger_allocation()

    def forget_task(self, framework: Framework, task: Task) -> None:
        framework.tasks.pop(task.task_id, None)
        framework.completed_tasks.append(task)
        agent = self.agents.get(task.agent_id)
        if agent is not None:
            agent.remove_task(framework.framework_id, task.task_id)
            self.persist_agent(agent.agent_id)

    def transition(
        self, framework: Framework | None, task: Task, status: dict, latest_state: str | None = None
    ) -> None:
        was_terminal = task.terminal
        if task.apply(status, latest_state) and task.terminal and not was_terminal:
            self.counters[f"master/tasks_{task.state[5:].lower()}"] += 1
            self._release(task)
            self.persist_agent(task.agent_id)
            if self.maintenance.draining_agents:
                self.maintenance.check_drained(task.agent_id)

    # ------------------------------------------------------------------ agents

    def remove_agent(
        self,
        agent_id: str,
        reason: str,
        removed: bool = False,
        gone_state: str = "TASK_GONE",
        reason_code: str = "REASON_AGENT_REMOVED",
    ) -> None:
        """Mark an agent unreachable (missed pings) or, with `removed`, gone for good; report its tasks.

        A removed agent's tasks are `gone_state` for partition-aware frameworks (TASK_GONE, or
        TASK_GONE_BY_OPERATOR when the operator marked it gone), TASK_LOST for the others."""
        agent = self.agents.get(agent_id)
        if agent is None:
            return
        log.warning("agent %s %s: %s", agent_id, "removed" if removed else "unreachable", reason)
        self.rescind_offers_on(agent)
        when = now()
        for framework_id, task_ids in list(agent.task_ids.items()):
            framework = self.frameworks.get(framework_id)
            if framework is None:
                continue
            for task_id in list(task_ids):
                task = framework.tasks.get(task_id)
                if task is None:
                    continue
                if task.terminal:
                    self.forget_task(framework, task)
                    continue
                aware = framework.partition_aware
                if removed:
                    state = gone_state if aware else "TASK_LOST"
                else:
                    state = "TASK_UNREACHABLE" if aware else "TASK_LOST"
                status = task_status(
                    task_id,
                    state,
                    agent_id=agent_id,
                    source="SOURCE_MASTER",
                    reason=reason_code,
                    message=f"Agent {agent.hostname} {reason}",
                    with_uuid=False,
                )
                agent.used = agent.used - task.resources
                self.allocator.recover(framework_id, task.role, agent_id, task.resources)
                task.apply(status)
                self.counters[f"master/tasks_{state[5:].lower()}"] += 1
                framework.send(event("UPDATE", {"status": status}))
                framework.tasks.pop(task_id, None)
                if state == "TASK_UNREACHABLE" or not removed:
                    task.unreachable_time = when
                    framework.unreachable_tasks[task_id] = task
                else:
                    framework.completed_tasks.append(task)
        self.allocator.remove_agent(agent_id)
        self.offer_encoder.forget(agent_id)
        if agent.stream is not None:
            agent.send(event("SHUTDOWN", {"message": reason}))
            agent.stream.close()
            agent.stream = None
        if removed:
            del self.agents[agent_id]
            self.agents_by_address.pop((agent.hostname, agent.port), None)
            self.removed_agent_ids.add(agent_id)
            self.counters["master/slave_removals"] += 1
            self.maintenance.agent_removed(agent_id)
        else:
            agent.task_ids.clear()
            agent.state = AgentState.UNREACHABLE
            agent.unreachable_time = when
            self.counters["master/slave_unreachable_completed"] += 1
        self.persist_agent(agent_id, urgent=True)
        self.trigger_allocation()

    def find_task(self, framework_id: str, task_id: str) -> Task | None:
        framework = self.frameworks.get(framework_id)
        return framework.tasks.get(task_id) if framework is not None else None

    # ------------------------------------------------------------------ offers

    def trigger_allocation(self) -> None:
        self._wake_allocator.set()

    async def run_allocation(self) -> int:
        """One allocation cycle, in slices with the event loop served in between; returns how many offers went out.

        Offers go out slice by slice. Between slices anything may happen (agents and frameworks come and go,
        offers are accepted or declined): the allocator looks everything up again in each slice, and the
        offers of agents or frameworks gone by the time they are sent go back (`_send_offers`)."""
        cycle = self.allocator.begin_cycle(time.monotonic())
        busy = 0.0  # the time this cycle held the event loop (what Mesos's allocation_run_ms measures)
        offered = 0
        try:
            while True:
                started = time.perf_counter()
                deadline = started + ALLOCATION_SLICE_SECONDS
                while not cycle.done:
                    allocations = self.allocator.allocate_slice(cycle, ALLOCATION_STEP_AGENTS)
                    self._send_offers(allocations)
                    offered += len(allocations)
                    if time.perf_counter() >= deadline:
                        break
                if cycle.done:
                    self.maintenance.send_inverse_offers()
                busy += time.perf_counter() - started
                if cycle.done:
                    break
                await asyncio.sleep(0)
                if not self.is_leading():
                    break
        finally:
            self.allocator.abort_cycle(cycle)  # a cycle cut short (cancelled, leadership lost): the rest waits
        self.allocation_run_timer.add(busy * 1000)
        self.counters["allocator/mesos/allocation_runs"] += 1
        return offered

    def _send_offers(self, allocations: list[Allocation]) -> None:
        by_framework: dict[str, list[bytes]] = {}
        # One timestamp for the slice's offers (a slice takes milliseconds): two clock reads fewer per offer.
        created, made_at = now(), time.monotonic()
        for allocation in allocations:
            framework = self.frameworks.get(allocation.framework_id)
            agent = self.agents.get(allocation.agent_id)
            if framework is None or agent is None or not framework.connected:
                self.allocator.recover(
                    allocation.framework_id, allocation.role, allocation.agent_id, allocation.resources
                )
                continue
            offer = Offer(
                self.ids.offer_id(),
                allocation.framework_id,
                allocation.agent_id,
                allocation.role,
                allocation.resources,
                created=created,
                made_at=made_at,
            )
            self.offers[offer.offer_id] = offer
            framework.offer_ids.add(offer.offer_id)
            agent.offer_ids.add(offer.offer_id)
            agent.offered = agent.offered + offer.resources
            unavailability = self.maintenance.unavailability_of(agent)
            by_framework.setdefault(framework.framework_id, []).append(
                self.offer_encoder.encode(offer, agent, unavailability)
            )
        for framework_id, offers in by_framework.items():
            framework = self.frameworks[framework_id]
            for start in range(0, len(offers), MAX_OFFERS_PER_EVENT):
                framework.send_encoded(offers_event(offers[start : start + MAX_OFFERS_PER_EVENT]))
            self.counters["master/offers_sent"] += len(offers)

    def _drop_offer(self, offer: Offer) -> None:
        """Take an offer out of the books (its resources stay allocated until recovered or used)."""
        self.offers.pop(offer.offer_id, None)
        framework = self.frameworks.get(offer.framework_id)
        if framework is not None:
            framework.offer_ids.discard(offer.offer_id)
        agent = self.agents.get(offer.agent_id)
        if agent is not None:
            agent.offer_ids.discard(offer.offer_id)
            agent.offered = agent.offered - offer.resources

    def rescind(self, offer: Offer, notify: bool = True) -> None:
        self._drop_offer(offer)
        self.allocator.recover(offer.framework_id, offer.role, offer.agent_id, offer.resources)
        if notify:
            framework = self.frameworks.get(offer.framework_id)
            if framework is not None:
                framework.send(event("RESCIND", {"offer_id": id_value(offer.offer_id)}))
        self.counters["master/offers_rescinded"] += 1

    def rescind_offers_on(self, agent: RegisteredAgent) -> None:
        for offer_id in list(agent.offer_ids):
            offer = self.offers.get(offer_id)
            if offer is not None:
                self.rescind(offer)

    def _remove_offers_of(self, framework: Framework, rescind: bool) -> None:
        for offer_id in list(framework.offer_ids):
            offer = self.offers.get(offer_id)
            if offer is not None:
                self.rescind(offer, notify=rescind)

    def _expire_offers(self) -> None:
        timeout = self.settings.offer_timeout
        if not timeout:
            return
        expired = expired_offers(self.offers, timeout, time.monotonic())
        for offer in expired:
            self.rescind(offer)  # RESCIND to the framework, the resources back to the allocator (no filter)
        if expired:
            log.info("rescinded %d offers held longer than --offer_timeout (%gs)", len(expired), timeout)

    # ------------------------------------------------------------------ loops

    async def _allocation_loop(self) -> None:
        interval = self.settings.allocation_interval
        full_pass_at = time.monotonic() + ALLOCATION_FULL_PASS_INTERVAL
        while True:
            try:
                await asyncio.wait_for(self._wake_allocator.wait(), interval)
                await asyncio.sleep(ALLOCATION_COALESCE_SECONDS)
            except TimeoutError:
                pass
            self._wake_allocator.clear()
            if not self.is_leading():
                continue
            try:
                if time.monotonic() >= full_pass_at:
                    full_pass_at = time.monotonic() + ALLOCATION_FULL_PASS_INTERVAL
                    self.allocator.wake_all()
                if self.allocator.has_pending_work(time.monotonic()):
                    await self.run_allocation()
                self._expire_offers()
            except Exception:
                log.exception("allocation cycle failed")
                await asyncio.sleep(interval)

    async def _garbage_collection_loop(self) -> None:
        thawed_at = time.monotonic()
        while True:
            await asyncio.sleep(GC_FREEZE_INTERVAL)
            if time.monotonic() - thawed_at > GC_THAW_INTERVAL:
                thawed_at = time.monotonic()
                gc.unfreeze()
                gc.collect()  # the one full walk of the hour: cycles among old objects go
            else:
                gc.collect(1)  # young garbage goes first: only survivors are frozen
            gc.freeze()

    async def _heartbeat_loop(self) -> None:
        heartbeat = event("HEARTBEAT")
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval)
            if not self.is_leading():
                continue
            for framework in self.frameworks.values():
                framework.send(heartbeat)

    # ------------------------------------------------------------------ registry

    def persist_agent(self, agent_id: str, urgent: bool = False) -> None:
        if self.registry is not None:
            self.registry.agent_changed(agent_id, urgent)

    def persist_maintenance(self) -> None:
        if self.registry is not None:
            self.registry.maintenance_changed()

    def persist_framework(self, framework_id: str) -> None:
        if self.registry is not None:
            self.registry.framework_changed(framework_id)


def _sum(items) -> Resources:
    total = None
    for item in items:
        total = item if total is None else total + item
    return Resources() if total is None else total
