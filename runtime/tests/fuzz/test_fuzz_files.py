"""Fuzz the agent's files API (/files/browse, /files/read, /files/download and their .json forms).

A real master and agent; the module's framework launches one task whose sandbox holds what a task can put
there: a regular file, a directory, a FIFO, a socket, symbolic links to /etc/passwd, to /etc, to itself and
to a file of the sandbox, and a file whose name is not UTF-8. Requests name those (by the sandbox's real
path or Mesos's virtual `/frameworks/...` form) with odd suffixes, or odd paths altogether, with odd
`offset` and `length` values. After every example:
- no answer >= 500, and an answer at all within REQUEST_TIMEOUT (a FIFO opened for reading never blocks);
- the agent answers /health within HEALTH_SECONDS (its event loop is free) and its process runs;
- a 200 only ever serves what lies inside the agent's sandboxes: a read or download a regular file, a
  browse a directory; what a symlink leading out names (/etc/passwd) is never in an answer;
- a read or download of anything but a regular file (FIFO, socket, directory, symlink out) is a 4xx.
"""

from __future__ import annotations

import concurrent.futures
import os
import stat
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from agent_testing import AgentHome, agent_tasks
from hypothesis import given, settings
from hypothesis import strategies as st
from master_helpers import start_master

from harness.processes import MesoliteProcess, ProcessLauncher
from harness.waiting import wait_for
from harness.zookeeper import ZooKeeperServer

from .conftest import examples
from .fuzz_testing import (
    BackgroundFramework,
    Reply,
    answers_health,
    fail,
    odd_strings,
    request,
    shown,
)

pytestmark = pytest.mark.integration

SECTION = "agent files"
HEALTH_SECONDS = 3.0  # the agent answers /health this fast after every example, or its event loop is blocked
TASK_ID = "sandbox-owner"
# What the task leaves in its sandbox; `ready` last, once everything else exists.
SANDBOX_SCRIPT = (
    "mkdir dir && echo inner > dir/inner.txt && echo hello > file.txt && mkfifo pipe && "
    "ln -s /etc/passwd passwd && ln -s /etc etc-link && ln -s loop loop && ln -s file.txt good-link && "
    "ln -s ../../../../../../../../../etc/hostname up-link && printf x > \"$(printf 'bad\\377name')\" && "
    "python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind(\"sock\")' && "
    "echo ready > ready && exec sleep 600"
)
ENTRIES = ["", "file.txt", "dir", "dir/inner.txt", "pipe", "sock", "passwd", "etc-link", "etc-link/passwd",
           "loop", "good-link", "up-link", "bad\udcffname", "ready", "no-such-file"]  # fmt: skip
ENDPOINTS = ["browse", "browse.json", "read", "read.json", "download", "download.json"]
NUMBERS = ["", "0", "1", "-1", "-2", "5", "1024", "1048577", str(2**31), str(2**63 - 1), str(2**63), str(2**64),
           "9" * 30, "9" * 5000, "1.5", "1e3", " 1", "+1", "0x10", "1_000", "\u0663", "\u00b9", "NaN", "x",
           "\x00", "-0", "0" * 40 + "1"]  # fmt: skip
ODD_ESCAPES = ["%", "%zz", "%ff", "%c0%af", "%00", "%2e%2e%2f", "%252e", "+", "%2F", ";", "#x", "?x=1", "&path=/"]


@dataclass
class FilesCluster:
    launcher: ProcessLauncher
    zookeeper: ZooKeeperServer
    directory: Path
    master: MesoliteProcess | None = None
    agent: MesoliteProcess | None = None
    home: AgentHome | None = None
    framework: BackgroundFramework | None = None
    sandbox: str = ""  # the task's sandbox, as /state reports it
    virtual: str = ""  # the same as Mesos's /frameworks/<framework>/executors/<executor>/runs/latest
    agent_id: str = ""

    def start(self) -> None:
        zk_url = self.zookeeper.url()
        self.home = AgentHome.create(self.directory)
        self.master = start_master(
            self.launcher, f"--zk={zk_url}", "--allocation_interval=100ms", f"--work_dir={self.directory / 'master'}"
        )
        self.agent = self.launcher.start("agent", *self.home.arguments(zk_url), port=self.home.port)
        self.framework = BackgroundFramework(self.master.port, name="files-fuzz-framework")
        self.framework.start()
        offers = wait_for(self.framework.wait_for_offers, 30, what="an offer from the agent")
        offer = offers[0]
        self.agent_id = offer["agent_id"]["value"]
        task = {
            "name": TASK_ID,
            "task_id": {"value": TASK_ID},
            "agent_id": {"value": self.agent_id},
            "resources": [
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
            ],
            "command": {"value": SANDBOX_SCRIPT},
        }
        launch = {"type": "LAUNCH", "launch": {"task_infos": [task]}}
        reply = self.framework.call({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [launch]}})
        assert reply.status == 202, f"ACCEPT answered {reply.status} {reply.text()}"
        self.sandbox = wait_for(lambda: agent_tasks(self.agent.url()).get(TASK_ID), 30, what="the task")["directory"]
        wait_for(lambda: Path(self.sandbox, "ready").exists(), 30, what="the task to fill its sandbox")
        framework_id = self.framework.framework_id
        self.virtual = f"/frameworks/{framework_id}/executors/{TASK_ID}/runs/latest"

    def stop(self) -> None:
        if self.framework is not None:
            self.framework.stop()
        for process in (self.agent, self.master):
            if process is not None and process.process.poll() is None:
                process.kill()
        if self.home is not None:
            self.home.remove_tasks()

    @property
    def sandboxes_root(self) -> Path:
        return (self.home.work_dir / "slaves").resolve()

    def local_target(self, path: str) -> Path | None:
        """The file a path names as the agent must see it (symlinks followed), None when it names none."""
        if path.startswith("/frameworks/"):
            path = f"{self.home.work_dir}/slaves/{self.agent_id}{path}"
        try:
            return Path(os.path.realpath(path, strict=True))
        except (OSError, ValueError):
            return None


@pytest.fixture(scope="module")
def cluster(zookeeper: ZooKeeperServer, module_launcher: ProcessLauncher, tmp_path_factory):
    cluster = FilesCluster(module_launcher, zookeeper, tmp_path_factory.mktemp("files-cluster"))
    cluster.start()
    yield cluster
    cluster.stop()
    module_launcher.stop_all()


def test_the_sandbox_holds_every_kind_of_file(cluster: FilesCluster) -> None:
    """The fuzzing below means something only if the sandbox holds what it is meant to."""
    sandbox = Path(cluster.sandbox)
    kinds = {name: os.lstat(sandbox / name).st_mode for name in ENTRIES if name and name != "no-such-file"
             and "/" not in name}  # fmt: skip
    assert stat.S_ISFIFO(kinds["pipe"]) and stat.S_ISSOCK(kinds["sock"]) and stat.S_ISDIR(kinds["dir"])
    assert all(stat.S_ISLNK(kinds[name]) for name in ("passwd", "etc-link", "loop", "good-link", "up-link"))
    assert stat.S_ISREG(kinds["file.txt"]) and stat.S_ISREG(kinds["bad\udcffname"])
    reply = request(cluster.agent.port, "GET", f"/files/read?path={quote(cluster.virtual)}/file.txt&offset=0")
    assert (reply.status, reply.json()) == (200, {"data": "hello\n", "offset": 0})


# ------------------------------------------------------------------------------------------- strategies


def quote(text: str) -> str:
    return urllib.parse.quote(text, safe="/", errors="surrogateescape")


@st.composite
def sandbox_paths(draw, cluster: FilesCluster) -> tuple[str, str]:
    """(the path as the agent decodes it, as it is sent in the query): an entry of the sandbox under its real
    or virtual name, with an odd suffix now and then; or an odd path altogether."""
    how = draw(st.sampled_from(["entry", "entry", "entry", "suffix", "odd", "escape"]))
    base = draw(st.sampled_from([cluster.sandbox, cluster.virtual]))
    if how == "odd":
        outside = ["/etc/passwd", "/frameworks/", "/frameworks/x/..", "/proc/self/environ", str(cluster.sandboxes_root)]
        path = draw(st.one_of(odd_strings(), st.sampled_from(outside)))
        return path, quote(path)
    entry = draw(st.sampled_from(ENTRIES))
    path = f"{base}/{entry}" if entry else base
    if how == "suffix":
        path += draw(st.sampled_from(["/", "/.", "/..", "/../..", "/../../../../../../etc/passwd", "//", "\x00",
                                      "/\x00/x", "/%2e%2e", "\u202e", "/" + "a/" * 50]))  # fmt: skip
    if how == "escape":
        escape = draw(st.sampled_from(ODD_ESCAPES))
        return f"{path}<{escape}>", quote(path) + escape  # what the agent decodes is the server's business
    return path, quote(path)


def number() -> st.SearchStrategy[str | None]:
    """An offset or length: absent or valid half of the time (so that reads get as far as the file), else odd."""
    return st.one_of(
        st.none(),
        st.sampled_from(["0", "1", "3", "-1", "100"]),
        st.sampled_from(NUMBERS),
        st.integers().map(str),
        odd_strings(),
    )


# ------------------------------------------------------------------------------------------- the test

PASSWD_LINE = Path("/etc/passwd").read_bytes().split(b"\n", 1)[0]


@pytest.mark.timeout(240)
@settings(max_examples=examples(300))
@given(data=st.data())
def test_files_api_with_odd_paths_and_numbers(cluster: FilesCluster, data) -> None:
    endpoint = data.draw(st.sampled_from(ENDPOINTS), label="endpoint")
    path, sent_path = data.draw(sandbox_paths(cluster), label="path")
    query = [f"path={sent_path}"]
    if endpoint.startswith("read"):
        for name in ("offset", "length"):
            value = data.draw(number(), label=name)
            if value is not None:
                query.append(f"{name}={quote(value)}")
    target = f"/files/{endpoint}?{'&'.join(query)}"
    reply = request(cluster.agent.port, "GET", target)
    shown_request = f"GET {shown(target.replace(cluster.sandbox, '<SANDBOX>').replace(cluster.virtual, '<VIRTUAL>'))}"

    def failed(prop: str, detail: str = "") -> None:
        fail(SECTION, endpoint, prop, shown_request, reply, detail, where=endpoint.removesuffix(".json"))

    if reply.status == 0:
        failed("no answer (a blocked read?)", reply.error)
    if reply.status >= 500:
        failed("status >= 500")
    if cluster.agent.process.poll() is not None:
        failed("agent process exited", f"exit status {cluster.agent.process.returncode}")
    if not answers_health(cluster.agent.port, timeout=HEALTH_SECONDS):
        failed(f"agent did not answer /health within {HEALTH_SECONDS}s")
    if reply.status == 200:
        check_served(cluster, endpoint, path, reply, failed)
    elif not endpoint.startswith("browse") and sent_path == quote(path):
        # Something the agent can name precisely that is not a regular file must be refused with a 4xx.
        local = cluster.local_target(path)
        mode = os.lstat(local).st_mode if local is not None else stat.S_IFREG
        if not stat.S_ISREG(mode) and not 400 <= reply.status < 500:
            failed("a non-regular file was not refused with a 4xx", f"{local} is {stat.filemode(mode)}")


def check_served(cluster: FilesCluster, endpoint: str, path: str, reply: Reply, failed) -> None:
    if PASSWD_LINE in reply.body:
        failed("served /etc/passwd (through a link out of the sandbox)")
    local = cluster.local_target(path) if "<" not in path else None
    if local is None:
        return  # an escaped path: what the agent decoded is not known here; the passwd check still holds
    root = cluster.sandboxes_root
    if local != root and root not in local.parents:
        failed("served something outside the sandboxes", str(local))
    mode = os.lstat(local).st_mode
    if endpoint.startswith("browse") and not stat.S_ISDIR(mode):
        failed("browsed something that is not a directory", stat.filemode(mode))
    if not endpoint.startswith("browse") and not stat.S_ISREG(mode):
        failed("served something that is not a regular file", stat.filemode(mode))


def test_concurrent_fifo_reads_leave_the_agent_answering(cluster: FilesCluster) -> None:
    """Many reads of the FIFO at once (more than the default thread pool has threads): each one a 4xx and the
    agent still answers meanwhile."""
    fifo = quote(f"{cluster.sandbox}/pipe")
    with concurrent.futures.ThreadPoolExecutor(max_workers=48) as pool:
        futures = [pool.submit(request, cluster.agent.port, "GET", f"/files/{e}?path={fifo}&offset=0&x={uuid.uuid4()}")
                   for e in ("read", "download") * 24]  # fmt: skip
        assert answers_health(cluster.agent.port, timeout=HEALTH_SECONDS)
        statuses = [future.result().status for future in futures]
    assert all(400 <= status < 500 for status in statuses), statuses
