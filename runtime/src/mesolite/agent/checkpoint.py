"""The agent's work directory (Mesos's own layout, a *contract* in docs/architecture.md) and safe writes.

Everything the agent must remember across a restart or SIGKILL is a file under `<work_dir>/meta`:
files that are replaced are written to a temporary name, fsynced and renamed; logs
(`events.jsonl`, `updates.jsonl`) are appended a line at a time and fsynced; a torn last line
(a crash in the middle of a write) is ignored when read back.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def write_atomically(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as file:
        file.write(data.encode() if isinstance(data, str) else data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def write_json(path: Path, value: Any) -> None:
    write_atomically(path, json.dumps(value, indent=1, sort_keys=True) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def append_json_line(path: Path, value: Any) -> None:
    line = (json.dumps(value, separators=(",", ":")) + "\n").encode()
    descriptor = open_for_append(path)
    try:
        os.write(descriptor, line)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_json_lines(path: Path, offset: int = 0) -> list[tuple[dict, int]]:
    """Each complete JSON object line from byte `offset` on, with the byte offset just after it."""
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            data = file.read()
    except FileNotFoundError:
        return []
    records = []
    position = offset
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break  # being written right now, or torn by a crash: read it next time (or never)
        position += len(line)
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                records.append((record, position))
    return records


def open_for_append(path: Path) -> int:
    """A file descriptor appending to `path` (for a child's stdout or stderr); the caller closes it."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def write_symlink(link: Path, target: Path | str) -> None:
    """Point `link` at `target`, replacing what was there atomically."""
    link.parent.mkdir(parents=True, exist_ok=True)
    temporary = link.with_name(f".{link.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    temporary.symlink_to(target)
    os.replace(temporary, link)


@dataclass(frozen=True)
class RunPaths:
    """The files of one executor run (one task): checkpoint under meta, sandbox outside it."""

    meta: Path  # .../meta/slaves/<agent>/frameworks/<framework>/executors/<executor>/runs/<container>
    sandbox: Path  # .../slaves/<agent>/frameworks/<framework>/executors/<executor>/runs/<container>

    @property
    def task_info(self) -> Path:
        return self.meta / "task.info"

    @property
    def executor_pid(self) -> Path:
        return self.meta / "pids" / "executor.pid"

    @property
    def events(self) -> Path:
        return self.meta / "events.jsonl"

    @property
    def kill_request(self) -> Path:
        return self.meta / "kill.request"

    @property
    def updates(self) -> Path:
        return self.meta / "updates.jsonl"

    @property
    def container_id(self) -> str:
        return self.meta.name


class WorkDirectory:
    """Paths under --work_dir."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.meta = self.root / "meta"

    @property
    def boot_id(self) -> Path:
        return self.meta / "boot_id"

    @property
    def latest_agent(self) -> Path:
        return self.meta / "slaves" / "latest"

    def agent_meta(self, agent_id: str) -> Path:
        return self.meta / "slaves" / agent_id

    def agent_info(self, agent_id: str) -> Path:
        return self.agent_meta(agent_id) / "slave.info"

    def framework_meta(self, agent_id: str, framework_id: str) -> Path:
        return self.agent_meta(agent_id) / "frameworks" / framework_id

    def framework_info(self, agent_id: str, framework_id: str) -> Path:
        return self.framework_meta(agent_id, framework_id) / "framework.info"

    def run(self, agent_id: str, framework_id: str, executor_id: str, container_id: str) -> RunPaths:
        relative = Path("frameworks", framework_id, "executors", executor_id, "runs", container_id)
        return RunPaths(
            meta=self.agent_meta(agent_id) / relative,
            sandbox=self.root / "slaves" / agent_id / relative,
        )

    def sandboxes(self) -> Path:
        return self.root / "slaves"

    def latest_agent_id(self) -> str | None:
        """The agent id that `meta/slaves/latest` points at, or None (a new agent)."""
        try:
            return os.readlink(self.latest_agent).rstrip("/").rsplit("/", 1)[-1]
        except OSError:
            return None

    def set_latest_agent_id(self, agent_id: str) -> None:
        self.agent_meta(agent_id).mkdir(parents=True, exist_ok=True)
        write_symlink(self.latest_agent, agent_id)

    def forget_latest_agent(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.latest_agent.unlink()

    def has_container(self, container_id: str) -> bool:
        """True when any agent id of this work directory ran the container."""
        return any(self.meta.glob(f"slaves/*/frameworks/*/executors/*/runs/{glob.escape(container_id)}"))

    def runs_of(self, agent_id: str) -> Iterator[RunPaths]:
        """Every checkpointed run of an agent id."""
        frameworks = self.agent_meta(agent_id) / "frameworks"
        if not frameworks.is_dir():
            return
        for task_info in sorted(frameworks.glob("*/executors/*/runs/*/task.info")):
            meta = task_info.parent
            relative = meta.relative_to(self.agent_meta(agent_id))
            yield RunPaths(meta=meta, sandbox=self.root / "slaves" / agent_id / relative)
