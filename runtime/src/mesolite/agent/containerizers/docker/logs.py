"""Copying a container's stdout and stderr into the sandbox: resumable across executors and dockerd restarts,
without writing a line twice."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from calendar import timegm
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors

from mesolite.agent.containerizers.docker.session import DockerSession, error_text

logger = logging.getLogger(__name__)

TIMESTAMP = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d) ")


def parse_log_timestamp(line: bytes) -> tuple[int, bytes] | None:
    """Split `docker logs --timestamps` output into (nanoseconds since the epoch, message)."""
    match = TIMESTAMP.match(line)
    if match is None:
        return None
    seconds_text, fraction, zone = match.groups()
    seconds = timegm(time.strptime(seconds_text.decode(), "%Y-%m-%dT%H:%M:%S"))
    if zone != b"Z":
        sign = 1 if zone[:1] == b"+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    nanoseconds = int((fraction or b"0").ljust(9, b"0"))
    return seconds * 1_000_000_000 + nanoseconds, line[match.end() :]


class LogPosition:
    """How far one stream has been copied: the last entry's timestamp and how many entries carried it.

    Kept in a small file of fixed width rewritten in place (one pwrite, no rename), so that an executor
    that starts over resumes without copying a line twice.
    """

    WIDTH = 32

    def __init__(self, path: Path):
        self.path = path
        self.nanoseconds = 0
        self.count = 0
        with contextlib.suppress(OSError, ValueError):
            nanoseconds, count = path.read_text().split()
            self.nanoseconds, self.count = int(nanoseconds), int(count)
        self._descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)

    def advance(self, nanoseconds: int) -> None:
        if nanoseconds == self.nanoseconds:
            self.count += 1
        else:
            self.nanoseconds, self.count = nanoseconds, 1
        os.pwrite(self._descriptor, f"{self.nanoseconds} {self.count}".ljust(self.WIDTH - 1).encode() + b"\n", 0)

    def close(self) -> None:
        os.close(self._descriptor)


def copy_log_entries(entries: Iterator[bytes], output, position: LogPosition) -> None:
    """Append the entries after `position` to `output` (entries at or before it were copied already)."""
    start_nanoseconds, start_count = position.nanoseconds, position.count
    seen_at_start = 0
    for entry in entries:
        parsed = parse_log_timestamp(entry)
        if parsed is None:  # not what --timestamps promises; keep the text rather than lose it
            output.write(entry)
            continue
        nanoseconds, message = parsed
        if nanoseconds < start_nanoseconds:
            continue
        if nanoseconds == start_nanoseconds:
            seen_at_start += 1
            if seen_at_start <= start_count:
                continue
        output.write(message)
        position.advance(nanoseconds)


def follow_logs(session: DockerSession, container: str, stream: str, sandbox: Path, run_dir: Path) -> None:
    """Copy the container's `stream` (stdout|stderr) into the sandbox file of that name until the
    container has stopped and everything it wrote is copied; survives dockerd restarts."""
    position = LogPosition(run_dir / f"docker-{stream}.position")
    try:
        with open(sandbox / stream, "ab", buffering=0) as output:
            while True:
                state = session.call(lambda api: api.inspect_container(container)["State"])
                running = bool(state.get("Running"))
                since = position.nanoseconds // 1_000_000_000 or None

                def read(api: docker.APIClient, running: bool = running, since: int | None = since) -> None:
                    entries = api.logs(
                        container,
                        stdout=stream == "stdout",
                        stderr=stream == "stderr",
                        stream=True,
                        follow=running,
                        timestamps=True,
                        since=since,
                    )
                    copy_log_entries(entries, output, position)

                session.call(read)
                if not running:
                    return
                # The stream ended while the container ran: it stopped just now, or dockerd went away.
    except docker.errors.NotFound:
        return
    except docker.errors.APIError as error:  # e.g. a log driver dockerd cannot read back
        logger.warning("Cannot copy the %s of %s into the sandbox: %s", stream, container, error_text(error))
    finally:
        position.close()
