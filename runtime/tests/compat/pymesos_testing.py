"""pymesos's side of the compatibility tests: a scheduler that launches a fixed set of commands on its first
fitting offer and records every callback (pymesos runs callbacks in its own IO thread: they only record, and the
tests assert from the main thread)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

TASK_RESOURCES = [
    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
    {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
]
# task id -> shell command
COMMANDS = {"quick": "echo hello from pymesos", "failing": "exit 3", "sleeper": "sleep 600"}
TIMEOUT = 60  # generous: the machine may be loaded; a healthy run takes a few seconds per step


@dataclass
class RecordingScheduler:
    """Builds a pymesos `Scheduler` that launches COMMANDS on its first fitting offer and records every
    callback (framework id, master info, status updates, errors)."""

    registered: list[tuple[dict, dict]] = field(default_factory=list)
    statuses: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    launched_on: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def states(self, task_id: str) -> list[str]:
        with self.lock:
            return [status["state"] for status in self.statuses if status["task_id"]["value"] == task_id]

    def reconciliations(self, task_id: str) -> list[dict]:
        with self.lock:
            return [
                status
                for status in self.statuses
                if status["task_id"]["value"] == task_id and status.get("reason") == "REASON_RECONCILIATION"
            ]

    def as_pymesos(self):
        from pymesos import Scheduler

        recorder = self

        class Recording(Scheduler):
            def registered(self, driver, framework_id, master_info):
                with recorder.lock:
                    recorder.registered.append((framework_id, master_info))

            def resourceOffers(self, driver, offers):
                for offer in offers:
                    if recorder.launched_on is None and fits(offer):
                        recorder.launched_on = offer["agent_id"]["value"]
                        driver.launchTasks(offer["id"], [task_info(name, offer) for name in COMMANDS])
                    else:
                        driver.declineOffer(offer["id"], {"refuse_seconds": 3600})

            def statusUpdate(self, driver, status):
                with recorder.lock:
                    recorder.statuses.append(status)

            def error(self, driver, message):
                with recorder.lock:
                    recorder.errors.append(message)

        return Recording()


def fits(offer: dict) -> bool:
    scalars = {item["name"]: item.get("scalar", {}).get("value", 0) for item in offer["resources"]}
    return scalars.get("cpus", 0) >= 0.1 * len(COMMANDS) and scalars.get("mem", 0) >= 32 * len(COMMANDS)


def task_info(task_id: str, offer: dict) -> dict:
    return {
        "task_id": {"value": task_id},
        "agent_id": offer["agent_id"],
        "name": task_id,
        "resources": TASK_RESOURCES,
        "command": {"value": COMMANDS[task_id]},
    }
