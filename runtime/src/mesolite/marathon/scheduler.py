"""The Mesos side of the scheduler: subscribe as a framework, turn offers into launches, status updates into
task states, reconcile after every (re)subscription, revive when there is work and suppress when there is none.

It talks to the master only through `mesolite.scheduler.client.SchedulerClient` (the public v1 API).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import aiohttp

from mesolite.marathon import health, readiness
from mesolite.marathon.marathon import Marathon
from mesolite.marathon.matching import Launch, OfferResources, match
from mesolite.marathon.tasks import ACTIVE_STATES, TERMINAL_STATES, MarathonTask
from mesolite.marathon.timestamps import now_timestamp
from mesolite.retry import Backoff, RetryPolicy

log = logging.getLogger(__name__)

# While launches wait, declined offers come back soon; with nothing to launch they stay away long.
REFUSE_SECONDS_WHILE_WAITING = 1.0
REFUSE_SECONDS_IDLE = 120.0
TICK_SECONDS = 0.5
# Ticks in between converge only what changed; this often every app is converged anyway, as a safety net.
CONVERGE_ALL_SECONDS = 30.0
# Changes that arrive while a tick runs, or within this many times as long as it took after it started, wait
# for the next tick together (a burst of status updates costs one converge of each app it touched, not one
# per update): ticks (e.g. converging one app of 10,000 tasks while its updates stream in) then take at most
# about a fifth of the loop's time, while small ones follow changes at once.
TICK_SHARE_FACTOR = 4.0
MAX_TICK_SPACING_SECONDS = 0.25
# How often tasks whose state the master could not tell yet are reconciled again.
RECONCILE_RETRY_SECONDS = 3.0
# How often every task is reconciled (Marathon's --reconciliation_interval default): lost updates heal.
RECONCILIATION_INTERVAL_SECONDS = 600.0
# Kills of a task Marathon does not know: the first at once, then at most one per window, the window growing.
# The master answers a kill of a task it cannot reach with a status update about it: without a window, each
# answer would be killed again, and the pair would loop as fast as the network allows.
UNKNOWN_TASK_KILL_POLICY = RetryPolicy(initial=5.0, maximum=300.0, factor=2.0, jitter=False)
# How many unknown tasks are remembered for that window (the oldest are forgotten first).
MAX_UNKNOWN_TASKS_REMEMBERED = 10_000


class MesosClient(Protocol):
    framework_id: str | None

    async def accept(self, offer_ids: list[str], operations: list[dict], filters: dict | None = None) -> None: ...
    async def decline(self, offer_ids: list[str], filters: dict | None = None) -> None: ...
    async def acknowledge(self, status: dict) -> None: ...
    async def kill(self, task_id: str, agent_id: str | None = None, kill_policy: dict | None = None) -> None: ...
    async def reconcile(self, tasks: list[tuple[str, str | None]] = ...) -> None: ...
    async def revive(self, roles: list[str] | None = None) -> None: ...
    async def suppress(self, roles: list[str] | None = None) -> None: ...


def framework_info(
    name: str,
    hostname: str,
    webui_url: str,
    failover_timeout: float,
    user: str,
    role: str,
    framework_id: str | None,
    principal: str | None = None,
) -> dict[str, Any]:
    info: dict[str, Any] = {
        "user": user,
        "name": name,
        "hostname": hostname,
        "webui_url": webui_url,
        "failover_timeout": failover_timeout,
        "checkpoint": True,
        "role": role,
        "capabilities": [{"type": "PARTITION_AWARE"}, {"type": "TASK_KILLING_STATE"}],
    }
    if framework_id:
        info["id"] = {"value": framework_id}
    if principal:
        info["principal"] = principal
    return info


class MesosScheduler:
    def __init__(self, marathon: Marathon) -> None:
        self.marathon = marathon
        self.client: MesosClient | None = None
        self.suppressed = False
        # Offers were declined with the long idle filter: new work needs a REVIVE to see them again.
        self.declined_idle = False
        self.subscribed = False
        self._health_session: aiohttp.ClientSession | None = None
        self._last_reconcile = 0.0
        self._last_full_reconcile = time.time()
        self._probing: set[tuple[str, int | str]] = set()
        self._probes: set[asyncio.Task] = set()
        self._next_probe: dict[tuple[str, int | str], float] = {}
        # When a task's next health check may run (seconds since the epoch, task id): a tick plans the checks of
        # the tasks that changed and of those that come due, not of every task.
        self._probes_due: list[tuple[float, str]] = []
        # Unknown task id -> (its kill back-off, when the next kill may be sent; monotonic seconds).
        self._unknown_kills: dict[str, tuple[Backoff, float]] = {}

    def attach(self, client: MesosClient) -> None:
        self.client = client
        self.marathon.killer = client

    # -- events from the master -------------------------------------------------------------------

    async def on_event(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        try:
            if kind == "SUBSCRIBED":
                await self._subscribed(event["subscribed"])
            elif kind == "OFFERS":
                await self.handle_offers(event["offers"].get("offers", []))
            elif kind == "UPDATE":
                await self.handle_update(event["update"]["status"])
            elif kind == "FAILURE":
                log.warning("master reports a failure: %s", event.get("failure"))
            elif kind == "ERROR":
                log.error("master error: %s", event.get("error", {}).get("message"))
        except Exception:
            log.exception("handling the %s event failed", kind)

    async def _subscribed(self, subscribed: Mapping[str, Any]) -> None:
        framework_id = subscribed["framework_id"]["value"]
        self.subscribed = True
        self.suppressed = False
        async with self.marathon.lock:
            if framework_id != self.marathon.framework_id:
                await self.marathon.storage.save_framework_id(framework_id)
                self.marathon.framework_id = framework_id
            known = [(task.id, task.agent_id) for task in self.marathon.tasks.values()]
        log.info("subscribed as framework %s; reconciling %d tasks", framework_id, len(known))
        self._last_full_reconcile = time.time()
        assert self.client is not None
        # Explicit reconciliation tells us what became of the tasks we know; implicit reconciliation
        # reveals tasks we do not know (launched just before a failover) so that we can kill them.
        if known:
            await self.client.reconcile(known)
        await self.client.reconcile([])
        # Kills asked for while no master listened (e.g. during a failover) are sent now.
        async with self.marathon.lock:
            for task in list(self.marathon.tasks.values()):
                if task.kill_requested_at is not None:
                    await self.marathon.kill(task, "asked for before this subscription")

    async def handle_offers(self, offers: list[Mapping[str, Any]]) -> None:
        assert self.client is not None
        launches: dict[str, list[dict]] = {}
        matched: list[tuple[MarathonTask, str, dict]] = []  # the task, its offer, its TaskInfo
        async with self.marathon.lock:
            ready = [e for e in self.marathon.queue.ready() if e.app_id in self.marathon.apps]
            # Where each queued app's tasks are, kept up to date as this round places more.
            placed = {e.app_id: [t.placement for t in self.marathon.active_tasks(e.app_id)] for e in ready}
            for offer in offers:
                offer_id = offer["id"]["value"]
                resources = OfferResources.of(offer)
                for entry in ready:
                    app = self.marathon.apps[entry.app_id]
                    while entry.count > 0:
                        result = match(app, resources, placed[entry.app_id])
                        if not isinstance(result, Launch):
                            entry.statistics.declined(result.label, result.need, result.available, offer)
                            break
                        matched.append((self._task_of(app, result, offer), offer_id, result.task_info))
                        self.marathon.queue.launched(entry.app_id)
                        placed[entry.app_id].append(result.placement)
            # Stored before launched (all of this round's at once): a new leader knows every launched task.
            stored = {task.id for task in await self.marathon.tasks_launched([task for task, _, _ in matched])}
            for task, offer_id, task_info in matched:
                if task.id in stored:
                    log.info("launching %s on %s", task.id, task.host)
                    launches.setdefault(offer_id, []).append(task_info)
            waiting = self.marathon.queue.has_work()
        for offer_id, task_infos in launches.items():
            operations = [{"type": "LAUNCH", "launch": {"task_infos": task_infos}}]
            try:
                await self.client.accept([offer_id], operations, {"refuse_seconds": REFUSE_SECONDS_WHILE_WAITING})
            except Exception as error:
                # The tasks stay STAGING; reconciliation or the launch timeout finds out what became of them.
                log.warning("ACCEPT of offer %s failed: %s", offer_id, error)
        unused = [offer["id"]["value"] for offer in offers if offer["id"]["value"] not in launches]
        if unused:
            refuse = REFUSE_SECONDS_WHILE_WAITING if waiting else REFUSE_SECONDS_IDLE
            self.declined_idle = self.declined_idle or not waiting
            with contextlib.suppress(Exception):
                await self.client.decline(unused, {"refuse_seconds": refuse})

    def _task_of(self, app: Mapping[str, Any], launch: Launch, offer: Mapping[str, Any]) -> MarathonTask:
        now = time.time()
        return MarathonTask(
            id=launch.task_id,
            app_id=app["id"],
            agent_id=offer["agent_id"]["value"],
            host=offer.get("hostname", ""),
            version=app["version"],
            config_version=(app.get("versionInfo") or {}).get("lastConfigChangeAt") or app["version"],
            staged_at=now_timestamp(),
            staged_epoch=now,
            ports=launch.host_ports,
            service_ports=launch.service_ports,
            attributes=dict(launch.placement.attributes),
        )

    async def handle_update(self, status: Mapping[str, Any]) -> None:
        assert self.client is not None
        async with self.marathon.lock:
            known = await self.marathon.status_update(status)
        if not known and self._may_kill_unknown(status):
            task_id = status["task_id"]["value"]
            agent_id = (status.get("agent_id") or {}).get("value")
            log.info("killing task %s, which Marathon does not know (state %s)", task_id, status.get("state"))
            with contextlib.suppress(Exception):
                await self.client.kill(task_id, agent_id)
        with contextlib.suppress(Exception):
            await self.client.acknowledge(dict(status))

    def _may_kill_unknown(self, status: Mapping[str, Any]) -> bool:
        """Whether an update of a task Marathon does not know should be answered with a KILL now."""
        task_id = status["task_id"]["value"]
        state = status.get("state", "")
        if state in TERMINAL_STATES:
            self._unknown_kills.pop(task_id, None)
            return False
        if (
            state not in ACTIVE_STATES
            and status.get("reason") == "REASON_RECONCILIATION"
            and status.get("source", "SOURCE_MASTER") == "SOURCE_MASTER"
        ):
            # The master's own answer about a task it cannot reach (e.g. TASK_UNREACHABLE): a KILL could
            # not reach it either, and would only be answered with this same update.
            return False
        now = time.monotonic()
        backoff, next_kill = self._unknown_kills.get(task_id, (None, 0.0))
        if backoff is None:
            backoff = UNKNOWN_TASK_KILL_POLICY.backoff()
        elif now < next_kill:
            return False
        self._unknown_kills.pop(task_id, None)  # re-inserted last: the dict stays in order of last kill
        self._unknown_kills[task_id] = (backoff, now + backoff.next_delay())
        while len(self._unknown_kills) > MAX_UNKNOWN_TASKS_REMEMBERED:
            del self._unknown_kills[next(iter(self._unknown_kills))]
        return True

    # -- the periodic work ------------------------------------------------------------------------

    async def run_ticks(self) -> None:
        """Converge, revive/suppress and run health checks until cancelled.

        A tick runs when something changed (all changes since the previous tick at once) and at least every
        `TICK_SECONDS`; it converges only the apps that changed (every app every `CONVERGE_ALL_SECONDS`).
        """
        last_timers = last_converge_all = -float("inf")
        async with aiohttp.ClientSession() as session:
            self._health_session = session
            while True:
                self.marathon.changed.clear()
                now = time.monotonic()
                timers = now - last_timers >= TICK_SECONDS
                converge_all = now - last_converge_all >= CONVERGE_ALL_SECONDS
                last_timers = now if timers else last_timers
                last_converge_all = now if converge_all else last_converge_all
                try:
                    await self.marathon.tick(converge_all=converge_all, timers=timers)
                    await self._revive_or_suppress()
                    await self._reconcile_unknown()
                    self._schedule_health_checks(self.marathon.take_changed_tasks(), everything=converge_all)
                    self._schedule_readiness_checks()
                except Exception:
                    log.exception("tick failed")
                took = time.monotonic() - now
                timeout = max(0.0, last_timers + TICK_SECONDS - time.monotonic())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.marathon.changed.wait(), timeout)
                spacing = min(MAX_TICK_SPACING_SECONDS, TICK_SHARE_FACTOR * took)
                await asyncio.sleep(max(0.0, now + spacing - time.monotonic()))

    async def _reconcile_unknown(self) -> None:
        if self.client is None or not self.subscribed:
            return
        if time.time() - self._last_full_reconcile > RECONCILIATION_INTERVAL_SECONDS:
            self._last_full_reconcile = time.time()
            known = [(t.id, t.agent_id) for t in self.marathon.tasks.values()]
            with contextlib.suppress(Exception):
                if known:
                    await self.client.reconcile(known)
                await self.client.reconcile([])
        if time.time() - self._last_reconcile < RECONCILE_RETRY_SECONDS:
            return
        # Looked for at most every RECONCILE_RETRY_SECONDS, not every tick: a scan of every task.
        self._last_reconcile = time.time()
        unknown = [(t.id, t.agent_id) for t in self.marathon.tasks.values() if t.reconciling_since is not None]
        if unknown:
            with contextlib.suppress(Exception):
                await self.client.reconcile(unknown)

    async def _revive_or_suppress(self) -> None:
        if self.client is None or not self.subscribed:
            return
        has_work = self.marathon.queue.has_work()
        try:
            if has_work and (self.suppressed or self.declined_idle):
                self.declined_idle = False
                await self.client.revive()
                self.suppressed = False
                log.info("launches are queued: reviving offers")
            elif not has_work and not self.suppressed:
                await self.client.suppress()
                self.suppressed = True
                log.info("nothing to launch: suppressing offers")
        except Exception as error:
            log.warning("revive/suppress not delivered: %s", error)

    def _schedule_health_checks(self, changed_task_ids: Iterable[str] = (), everything: bool = True) -> None:
        """Start the health checks that are due, of the tasks that changed and of those whose next check came
        due (every task's, with `everything`)."""
        now = time.time()
        tasks = self.marathon.tasks
        if everything:
            candidates: dict[str, None] = dict.fromkeys(tasks)
            self._probes_due = []
        else:
            candidates = dict.fromkeys(changed_task_ids)
            while self._probes_due and self._probes_due[0][0] <= now:
                candidates[heapq.heappop(self._probes_due)[1]] = None
        for task_id in candidates:
            task = tasks.get(task_id)
            if task is None:
                continue
            app = self.marathon.apps.get(task.app_id)
            if app is None or not task.is_running or task.kill_requested_at is not None:
                continue
            next_due = None
            for index, check in health.marathon_side_checks(app):
                key = (task.id, index)
                if key in self._probing or now < self._next_probe.get(key, 0):
                    planned = self._next_probe.get(key, now)
                    next_due = planned if next_due is None else min(next_due, planned)
                    continue
                port = health.check_port(check, task)
                if port is None:
                    continue
                self._probing.add(key)
                self._next_probe[key] = now + float(check["intervalSeconds"])
                next_due = self._next_probe[key] if next_due is None else min(next_due, self._next_probe[key])
                probe = asyncio.create_task(self._probe(task, index, check, port), name=f"health-{task.id}-{index}")
                self._probes.add(probe)
                probe.add_done_callback(self._probes.discard)
            if next_due is not None:
                heapq.heappush(self._probes_due, (next_due, task.id))

    def _schedule_readiness_checks(self) -> None:
        """Check the readiness of each task a deployment waits for: running (and healthy, where the app has
        health checks), of the app's current configuration, not ready yet."""
        marathon = self.marathon
        now = time.time()
        # Only apps a deployment works on can be gated: their tasks, not every task.
        deploying = {a.app for d in marathon.deployments.values() for a in d.current_actions}
        gated = [app_id for app_id in deploying if marathon.readiness_gated(app_id)]
        for task in [t for app_id in gated for t in marathon.tasks_of(app_id)]:
            app = marathon.apps.get(task.app_id)
            if app is None or task.id in marathon.ready_tasks or not task.is_running:
                continue
            if task.kill_requested_at is not None or task.config_version != app["versionInfo"]["lastConfigChangeAt"]:
                continue
            if not marathon.is_healthy(task, app):
                continue
            for check in readiness.checks_of(app):
                key = (task.id, f"readiness:{check['name']}")
                if key in self._probing or now < self._next_probe.get(key, 0):
                    continue
                port = readiness.check_port(check, app, task)
                if port is None:
                    continue
                self._probing.add(key)
                self._next_probe[key] = now + float(check["intervalSeconds"])
                probe = asyncio.create_task(
                    self._probe_readiness(task, check, port), name=f"readiness-{task.id}-{check['name']}"
                )
                self._probes.add(probe)
                probe.add_done_callback(self._probes.discard)

    async def _probe_readiness(self, task: MarathonTask, check: Mapping[str, Any], port: int) -> None:
        key = (task.id, f"readiness:{check['name']}")
        try:
            result = await readiness.probe(check, task, port, self._health_session)
            await self.marathon.readiness_verdict(task, result)
        except Exception:
            log.exception("readiness check of %s failed to run", task.id)
        finally:
            self._probing.discard(key)

    async def _probe(self, task: MarathonTask, index: int, check: Mapping[str, Any], port: int) -> None:
        try:
            outcome = await health.probe(check, task.host, port, self._health_session)
            await self.marathon.health_verdict(task, index, outcome)
        except Exception:
            log.exception("health check of %s failed to run", task.id)
        finally:
            self._probing.discard((task.id, index))
