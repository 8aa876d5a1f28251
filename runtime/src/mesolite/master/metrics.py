"""/metrics/snapshot: the master's gauges and counters under Mesos's key names."""

from __future__ import annotations

import math
import resource
import time
from collections import deque
from typing import TYPE_CHECKING

from mesolite.master.agents import AgentState
from mesolite.resources import Resources

if TYPE_CHECKING:
    from mesolite.master.master import Master

# Gauges of tasks by state, counted from the live tasks.
LIVE_STATES = ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_UNREACHABLE")
# Counters of tasks that reached a terminal state (cumulative, as in Mesos).
TERMINAL_COUNTERS = ("finished", "failed", "killed", "lost", "error", "dropped", "gone", "gone_by_operator")


# The percentiles a Mesos timer reports, as `<name>/p50` and so on.
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p999", 99.9), ("p9999", 99.99))


class Timer:
    """A Mesos-style timer: the last value, plus statistics over the values of the last `window` seconds.

    `snapshot(name)` gives `<name>` (the last value) and `<name>/count`, `/min`, `/max`, `/p50`, `/p90`,
    `/p95`, `/p99`, `/p999`, `/p9999` (linear interpolation between the closest ranks), as Mesos's
    `allocator/mesos/allocation_run_ms` does. At most `capacity` values are kept (the newest).
    """

    def __init__(self, window: float = 3600.0, capacity: int = 10_000):
        self.window = window
        self._values: deque[tuple[float, float]] = deque(maxlen=capacity)  # (time.monotonic(), value)

    def add(self, value: float) -> None:
        self._values.append((time.monotonic(), value))

    def snapshot(self, name: str) -> dict[str, float]:
        horizon = time.monotonic() - self.window
        while self._values and self._values[0][0] < horizon:
            self._values.popleft()
        if not self._values:
            return {}
        values = sorted(value for _when, value in self._values)
        metrics = {
            name: round(self._values[-1][1], 3),
            f"{name}/count": float(len(values)),
            f"{name}/min": round(values[0], 3),
            f"{name}/max": round(values[-1], 3),
        }
        for suffix, percent in PERCENTILES:
            metrics[f"{name}/{suffix}"] = round(_percentile(values, percent), 3)
        return metrics


def _percentile(ordered: list[float], percent: float) -> float:
    position = (len(ordered) - 1) * percent / 100.0
    lower, upper = math.floor(position), math.ceil(position)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def snapshot(master: Master | None, start_time: float) -> dict[str, float]:
    metrics: dict[str, float] = {
        "master/uptime_secs": round(time.time() - start_time, 3),
        "master/elected": 1.0 if master is not None else 0.0,
        "system/mem_rss_bytes": float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024),
    }
    if master is None:
        return metrics
    agents = master.agents.values()
    metrics.update(
        {
            "master/slaves_active": _count(agents, AgentState.ACTIVE),
            "master/slaves_connected": _count(agents, AgentState.ACTIVE),
            "master/slaves_disconnected": _count(agents, AgentState.DISCONNECTED),
            "master/slaves_inactive": _count(agents, AgentState.DISCONNECTED),
            "master/slaves_unreachable": _count(agents, AgentState.UNREACHABLE),
            "master/recovery_slave_removals": 0.0,
            "master/frameworks_active": float(sum(1 for f in master.frameworks.values() if f.active)),
            "master/frameworks_inactive": float(sum(1 for f in master.frameworks.values() if not f.active)),
            "master/frameworks_connected": float(sum(1 for f in master.frameworks.values() if f.connected)),
            "master/frameworks_disconnected": float(sum(1 for f in master.frameworks.values() if not f.connected)),
            "master/outstanding_offers": float(len(master.offers)),
        }
    )
    metrics.update(master.allocation_run_timer.snapshot("allocator/mesos/allocation_run_ms"))
    states = {state: 0 for state in LIVE_STATES}
    for framework in master.frameworks.values():
        for task in framework.tasks.values():
            if task.state in states:
                states[task.state] += 1
        states["TASK_UNREACHABLE"] += len(framework.unreachable_tasks)
    for state, count in states.items():
        metrics[f"master/tasks_{state[5:].lower()}"] = float(count)
    for name in TERMINAL_COUNTERS:
        metrics[f"master/tasks_{name}"] = float(master.counters.get(f"master/tasks_{name}", 0))
    total: dict[str, float] = {}
    used: dict[str, float] = {}
    for agent in agents:
        if agent.state in (AgentState.ACTIVE, AgentState.DISCONNECTED):
            _add(total, agent.total)
            _add(used, agent.used)
    for name in ("cpus", "mem", "disk", "gpus"):
        total_amount, used_amount = round(total.get(name, 0.0), 3), round(used.get(name, 0.0), 3)
        metrics[f"master/{name}_total"] = total_amount
        metrics[f"master/{name}_used"] = used_amount
        metrics[f"master/{name}_percent"] = used_amount / total_amount if total_amount else 0.0
    for key in (
        "master/slave_registrations",
        "master/slave_reregistrations",
        "master/slave_removals",
        "master/frameworks_registered",
        "master/tasks_launched",
        "master/messages_status_update",
        "master/messages_kill_task",
        "master/valid_status_updates",
        "master/offers_sent",
        "master/offers_rescinded",
        "allocator/mesos/allocation_runs",
    ):
        metrics[key] = float(master.counters.get(key, 0))
    return metrics


def _count(agents, state: AgentState) -> float:
    return float(sum(1 for agent in agents if agent.state == state))


def _add(target: dict[str, float], resources: Resources) -> None:
    for name, quantity in resources.scalars().items():
        target[name] = target.get(name, 0.0) + quantity
