"""CPU and memory limits of command tasks through Linux control groups (v1 hierarchies, as Mesos uses them).

Each container gets `<hierarchy>/<controller>/<cgroups_root>/<container id>` in the `cpu` and
`memory` hierarchies: `cpu.shares` = 1024 per CPU (and a CFS quota with --cgroups_enable_cfs),
`memory.limit_in_bytes` = the task's `mem`. Every process of the task is in it, so the container
can be killed completely even when a task daemonizes out of its process group.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CPU_SHARES_PER_CPU = 1024
MIN_CPU_SHARES = 2  # the kernel's minimum
CFS_PERIOD_MICROSECONDS = 100_000
MIN_MEMORY_BYTES = 32 * 1024 * 1024  # Mesos's minimum memory limit; less cannot even start a shell


def _mounted_v1_controllers() -> dict[str, Path]:
    """controller -> mount point of every cgroup v1 hierarchy (from /proc/self/mounts)."""
    mounts: dict[str, Path] = {}
    with contextlib.suppress(OSError), open("/proc/self/mounts") as table:
        for line in table:
            parts = line.split()
            if len(parts) < 4 or parts[2] != "cgroup":
                continue
            for option in parts[3].split(","):
                mounts.setdefault(option, Path(parts[1]))
    return mounts


def hierarchy_problem(controller: str, hierarchy: str, cgroups_root: str) -> str | None:
    """Why `controller` cannot be used for limits here, or None when it can."""
    mounts = _mounted_v1_controllers()
    if controller not in mounts:
        if Path(hierarchy, "cgroup.controllers").exists():
            return f"{hierarchy} is a cgroup v2 (unified) hierarchy; mesolite enforces limits with cgroup v1 only"
        return f"no cgroup v1 '{controller}' hierarchy is mounted"
    base = mounts[controller] / cgroups_root
    try:
        base.mkdir(exist_ok=True)
    except OSError as error:
        return f"cannot create {base}: {error.strerror}"
    if not os.access(base, os.W_OK):
        return f"{base} is not writable"
    return None


@dataclass
class ContainerCgroups:
    """The cgroups of one container (any of them may be absent when the machine does not allow it)."""

    cpu: Path | None
    memory: Path | None

    @property
    def paths(self) -> list[Path]:
        return [path for path in (self.cpu, self.memory) if path is not None]

    def join(self, pid: int = 0) -> None:
        """Move a process (0: the calling one) into every cgroup. Safe to call in a child before exec."""
        for path in self.paths:
            with open(path / "cgroup.procs", "w") as procs:
                procs.write(str(pid or os.getpid()))

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self.paths:
            with contextlib.suppress(OSError):
                found.update(int(line) for line in (path / "cgroup.procs").read_text().split())
        return found

    def kill_all(self) -> None:
        """SIGKILL everything left in the container (tasks that left their process group, too)."""
        for _attempt in range(50):
            remaining = self.pids()
            if not remaining:
                return
            for pid in remaining:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        log.warning("processes %s survived SIGKILL in %s", sorted(self.pids()), self.paths)

    def remove(self) -> None:
        for path in self.paths:
            for _attempt in range(50):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)  # the kernel releases a cgroup shortly after its last process exits
            else:
                log.warning("could not remove cgroup %s", path)

    def memory_limit_hit(self) -> bool:
        """True when the kernel's OOM killer acted in this container (or the limit was reached)."""
        if self.memory is None:
            return False
        with contextlib.suppress(OSError, ValueError):
            for line in (self.memory / "memory.oom_control").read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == "oom_kill":  # kernels since 4.13 count OOM kills; older ones only failures
                    return int(value) > 0
            return int((self.memory / "memory.failcnt").read_text()) > 0
        return False

    def max_memory_bytes(self) -> int | None:
        if self.memory is None:
            return None
        with contextlib.suppress(OSError, ValueError):
            return int((self.memory / "memory.max_usage_in_bytes").read_text())
        return None


def _write(path: Path, value: int | str) -> None:
    path.write_text(str(value))


def create_container_cgroups(
    container_id: str,
    cpus: float,
    memory_megabytes: float,
    *,
    isolation: tuple[str, ...],
    hierarchy: str,
    cgroups_root: str,
    enable_cfs: bool,
) -> tuple[ContainerCgroups, list[str]]:
    """Create the container's cgroups with their limits. Returns them and the problems met: a limit that
    cannot be enforced is logged and reported, never fatal (the task runs without it)."""
    problems: list[str] = []
    mounts = _mounted_v1_controllers()
    cpu_path = memory_path = None
    if "cgroups/cpu" in isolation and cpus > 0:
        problem = hierarchy_problem("cpu", hierarchy, cgroups_root)
        if problem is None:
            cpu_path = mounts["cpu"] / cgroups_root / container_id
            try:
                cpu_path.mkdir(exist_ok=True)
                _write(cpu_path / "cpu.shares", max(MIN_CPU_SHARES, int(cpus * CPU_SHARES_PER_CPU)))
                if enable_cfs:
                    _write(cpu_path / "cpu.cfs_period_us", CFS_PERIOD_MICROSECONDS)
                    _write(cpu_path / "cpu.cfs_quota_us", max(1000, int(cpus * CFS_PERIOD_MICROSECONDS)))
            except OSError as error:
                problems.append(f"cpu limit not enforced: {cpu_path}: {error.strerror}")
        else:
            problems.append(f"cpu limit not enforced: {problem}")
    if "cgroups/mem" in isolation and memory_megabytes > 0:
        problem = hierarchy_problem("memory", hierarchy, cgroups_root)
        if problem is None:
            memory_path = mounts["memory"] / cgroups_root / container_id
            try:
                memory_path.mkdir(exist_ok=True)
                limit = max(MIN_MEMORY_BYTES, int(memory_megabytes * 1024 * 1024))
                _write(memory_path / "memory.limit_in_bytes", limit)
            except OSError as error:
                problems.append(f"memory limit not enforced: {memory_path}: {error.strerror}")
        else:
            problems.append(f"memory limit not enforced: {problem}")
    for problem in problems:
        log.warning("container %s: %s", container_id, problem)
    return ContainerCgroups(cpu=cpu_path, memory=memory_path), problems


def existing_container_cgroups(container_id: str, cgroups_root: str) -> ContainerCgroups:
    """The cgroups a container has (after a restart, for cleanup)."""
    mounts = _mounted_v1_controllers()
    found = {}
    for controller in ("cpu", "memory"):
        path = mounts[controller] / cgroups_root / container_id if controller in mounts else None
        found[controller] = path if path is not None and path.is_dir() else None
    return ContainerCgroups(cpu=found["cpu"], memory=found["memory"])


def container_ids_with_cgroups(cgroups_root: str) -> set[str]:
    """Every container id that has a cgroup under the root (to find orphans after a restart)."""
    mounts = _mounted_v1_controllers()
    ids: set[str] = set()
    for controller in ("cpu", "memory"):
        if controller in mounts and (mounts[controller] / cgroups_root).is_dir():
            ids.update(child.name for child in (mounts[controller] / cgroups_root).iterdir() if child.is_dir())
    return ids
