"""The files API of a real agent against what a task can put in its sandbox and what anyone can ask for.

A task that created a FIFO in its sandbox froze its agent through /files/read (a blocking open on the
event loop) until every task on it was lost; `path=%00` answered 500. Only regular files and directories
are served, everything else is a 4xx that says why, and the agent keeps serving meanwhile.
"""

# ruff: noqa: F811 - pytest fixtures imported from agent_testing and agent_fake_master are redefined as parameters

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from agent_fake_master import FakeMaster, master  # noqa: F401 - a fixture
from agent_testing import AgentHome, agent_tasks, home  # noqa: F401 - a fixture

from harness.http import get_json
from harness.processes import MesoliteProcess
from harness.waiting import wait_for

pytestmark = pytest.mark.integration


def start_agent(launcher, home: AgentHome, master: FakeMaster) -> MesoliteProcess:
    agent = launcher.start("agent", *home.arguments(master.address()), port=home.port)
    wait_for(lambda: get_json(agent.url("/metrics/snapshot"))["slave/registered"] == 1.0, 20, what="registration")
    return agent


def fetch(url: str, timeout: float = 10, **query) -> tuple[int, bytes]:
    """(status, body) of a GET, whatever the status."""
    if query:
        url += "?" + urllib.parse.urlencode(query)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def sandbox_with_fifo(agent: MesoliteProcess, master: FakeMaster) -> str:
    master.run_task("piper", {"value": "mkfifo pipe && python3 -c 'import socket; socket.socket(socket.AF_UNIX)"
                                        ".bind(\"sock\")' && echo ready > ready && exec sleep 600"})  # fmt: skip
    directory = wait_for(lambda: agent_tasks(agent.url()).get("piper"), 20, what="the task in /state")["directory"]
    wait_for(lambda: Path(directory, "ready").exists(), 20, what="the task to create its FIFO")
    return directory


def test_a_fifo_in_a_sandbox_is_refused_without_blocking_the_agent(launcher, home, master):
    agent = start_agent(launcher, home, master)
    directory = sandbox_with_fifo(agent, master)
    fifo = f"{directory}/pipe"

    answers: dict[str, tuple[int, bytes]] = {}

    def ask(endpoint: str, path: str) -> None:
        answers[f"{endpoint} {path.rsplit('/', 1)[1]}"] = fetch(agent.url(f"/files/{endpoint}"), path=path, offset=0)

    askers = [
        threading.Thread(target=ask, args=(endpoint, path), daemon=True)
        for endpoint in ("read", "download")
        for path in (fifo, f"{directory}/sock")
    ]
    for asker in askers:
        asker.start()
    # Meanwhile (and after) the agent answers everything else.
    started = time.monotonic()
    assert get_json(agent.url("/state"))["id"] == master.agent_ids[-1]
    assert time.monotonic() - started < 5
    for asker in askers:
        asker.join(10)
    assert len(answers) == 4, f"the files API hung on a FIFO or socket: answered only {sorted(answers)}"
    for what, (status, body) in answers.items():
        assert 400 <= status < 500, (what, status, body)
    assert b"FIFO" in answers["read pipe"][1] and b"socket" in answers["read sock"][1]
    listing = {entry["path"].rsplit("/", 1)[1]: entry for entry in get_json(agent.url("/files/browse"), path=directory)}
    assert listing["pipe"]["mode"].startswith("p"), "a FIFO is listed (lstat), just not opened"
    assert fetch(agent.url("/files/read"), path=f"{directory}/ready", offset=0) == (200, b'{"data": "ready\\n", '
                                                                                          b'"offset": 0}')  # fmt: skip
    status, body = fetch(agent.url("/files/download"), path=f"{directory}/ready")
    assert (status, body) == (200, b"ready\n")
    assert get_json(agent.url("/state"))["id"] == master.agent_ids[-1]


def test_odd_paths_and_numbers_are_bad_requests(launcher, home, master):
    agent = start_agent(launcher, home, master)
    master.run_task("writer", {"value": "echo hello > out; exec sleep 600"})
    directory = wait_for(lambda: agent_tasks(agent.url()).get("writer"), 20, what="the task in /state")["directory"]
    out = f"{directory}/out"
    wait_for(lambda: Path(out).exists(), 20, what="the task's file")
    for endpoint in ("read", "browse", "download"):
        for path in ("\0", f"{directory}/\0x", "x" * 100_000, "/" + "a/" * 3000, ""):
            status, body = fetch(agent.url(f"/files/{endpoint}"), path=path)
            assert status == 400, (endpoint, path[:40], status, body[:200])
    for offset, length in (("x", "1"), ("1", "x"), ("1.5", None), ("1e3", None), ("9" * 5000, None),
                           (str(2**64), None), ("0", str(2**64)), ("-5", None), ("0", "-7"), (" 1", None),
                           ("1_000", None), ("0x10", None), ("٣", None)):  # fmt: skip
        query = {"path": out, "offset": offset, **({"length": length} if length is not None else {})}
        status, body = fetch(agent.url("/files/read"), **query)
        assert status == 400, (offset, length, status, body[:200])
    assert fetch(agent.url("/files/read"), path=out, offset="-1")[1] == b'{"data": "", "offset": 6}'
    assert fetch(agent.url("/files/read"), path=out, offset="2", length="3")[1] == b'{"data": "llo", "offset": 2}'
    assert fetch(agent.url("/files/read"), path=out, offset="999")[1] == b'{"data": "", "offset": 6}'
    assert fetch(agent.url("/files/read"), path="/etc/passwd")[0] == 404
    assert agent.process.poll() is None
