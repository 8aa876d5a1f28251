"""The agent's resources when --resources does not name them all: detected as Mesos detects them.

cpus = the machine's cores; mem = total - 1 GiB when the total is at least 2 GiB, else half of it;
disk = the work directory's filesystem - 5 GiB when it has at least 10 GiB, else half; ports 31000-32000.
Whatever --resources does name is taken as given.
"""

from __future__ import annotations

import os
from pathlib import Path

from mesolite.resources import Resources, parse_resources

GIB_IN_MB = 1024
DEFAULT_PORTS = "[31000-32000]"


def total_memory_megabytes() -> float:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024
    raise OSError("MemTotal missing from /proc/meminfo")


def filesystem_megabytes(path: Path) -> float:
    while not path.exists():
        path = path.parent
    statistics = os.statvfs(path)
    return statistics.f_blocks * statistics.f_frsize / 2**20


def detected_memory(total: float) -> float:
    return total - GIB_IN_MB if total >= 2 * GIB_IN_MB else total / 2


def detected_disk(total: float) -> float:
    return total - 5 * GIB_IN_MB if total >= 10 * GIB_IN_MB else total / 2


def agent_resources(flag: str | None, work_dir: str) -> Resources:
    """--resources, completed with detected cpus, mem, disk and ports where it does not name them."""
    given = parse_resources(flag) if flag else Resources()
    detected = {
        "cpus": lambda: f"cpus:{os.cpu_count() or 1}",
        "mem": lambda: f"mem:{int(detected_memory(total_memory_megabytes()))}",
        "disk": lambda: f"disk:{int(detected_disk(filesystem_megabytes(Path(work_dir))))}",
        "ports": lambda: f"ports:{DEFAULT_PORTS}",
    }
    missing = [describe() for name, describe in detected.items() if name not in given.names()]
    return given + parse_resources(";".join(missing)) if missing else given
