"""Containerizers by name (`--containerizers=docker,mesos`); each imported only when it is enabled.

The docker containerizer needs the docker SDK and a reachable dockerd; when it cannot be loaded the
agent still starts, and tasks that need it fail with the reason instead of the agent refusing to run.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable

from mesolite.agent.containerizers.base import AgentOptions, Containerizer, ExecutorRun, Termination

log = logging.getLogger(__name__)

# name -> (module, class). Modules are imported lazily: `mesos` must work on hosts without docker.
CONTAINERIZERS: dict[str, tuple[str, str]] = {
    "mesos": ("mesolite.agent.containerizers.mesos", "MesosContainerizer"),
    "docker": ("mesolite.agent.containerizers.docker.containerizer", "DockerContainerizer"),
}
# The `container.type` of a TaskInfo that each containerizer exists for (used when it is unavailable).
CONTAINER_TYPES = {"docker": "DOCKER"}


def parse_containerizer_names(text: str) -> tuple[str, ...]:
    """`docker,mesos` -> ("docker", "mesos"); `ValueError` naming an unknown containerizer."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise ValueError("no containerizer named (expected e.g. 'mesos' or 'docker,mesos')")
    unknown = [name for name in names if name not in CONTAINERIZERS]
    if unknown:
        raise ValueError(f"unknown containerizer {', '.join(unknown)} (known: {', '.join(CONTAINERIZERS)})")
    return names


class UnavailableContainerizer(Containerizer):
    """Stands in for an enabled containerizer that could not be loaded: it claims the tasks the real one
    would have claimed, so that they fail with the reason instead of running somewhere else."""

    def __init__(self, options: AgentOptions, name: str, reason: str):
        super().__init__(options)
        self.name = name  # type: ignore[misc]
        self.reason = reason

    def supports(self, task: dict) -> bool:
        wanted = CONTAINER_TYPES.get(self.name)
        return wanted is not None and (task.get("container") or {}).get("type") == wanted

    async def run(self, run: ExecutorRun) -> Termination:
        raise RuntimeError(self.reason)

    async def kill(self, run: ExecutorRun, grace_period: float) -> None:
        return None

    async def run_check_command(self, run: ExecutorRun, command: dict) -> int:
        raise RuntimeError(self.reason)


def load_containerizer(name: str, options: AgentOptions) -> Containerizer:
    """An instance of the named containerizer, or an `UnavailableContainerizer` saying why not."""
    module_name, class_name = CONTAINERIZERS[name]
    try:
        module = importlib.import_module(module_name)
        return getattr(module, class_name)(options)
    except Exception as error:  # an import error, a missing SDK, an unreachable dockerd: all the same here
        reason = f"the {name} containerizer is not available on this agent: {type(error).__name__}: {error}"
        log.warning("%s; tasks that need it will fail", reason)
        return UnavailableContainerizer(options, name, reason)


def load_containerizers(names: Iterable[str], options: AgentOptions) -> list[Containerizer]:
    return [load_containerizer(name, options) for name in names]


def pick_containerizer(containerizers: Iterable[Containerizer], task: dict) -> Containerizer | None:
    """The first containerizer (in --containerizers order) that supports the task, as Mesos picks."""
    return next((candidate for candidate in containerizers if candidate.supports(task)), None)


__all__ = [
    "AgentOptions",
    "Containerizer",
    "ExecutorRun",
    "Termination",
    "load_containerizer",
    "load_containerizers",
    "parse_containerizer_names",
    "pick_containerizer",
]
