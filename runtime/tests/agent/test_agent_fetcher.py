"""The fetcher (`mesolite.agent.fetcher`): URIs into a sandbox from a real local HTTP server and local files, the
fetcher process (failures, cancellation, the task's user), and a real agent fetching for its tasks."""

# ruff: noqa: F811 - pytest fixtures imported from agent_testing and agent_fake_master are redefined as parameters

from __future__ import annotations

import asyncio
import functools
import gzip
import io
import os
import pwd
import socket
import stat
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from agent_fake_master import FakeMaster, master  # noqa: F401 - a fixture
from agent_testing import AgentHome, agent_tasks, home, read_sandbox_file  # noqa: F401 - a fixture

from harness.http import get_json
from harness.waiting import wait_for
from mesolite.agent import fetcher
from mesolite.agent.fetcher import FetchError, fetch_all

SCRIPT = b"#!/bin/sh\necho tool ran with $# arguments\n"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # the test output is no place for access logs
        pass


@dataclass
class Served:
    """A directory served over HTTP on 127.0.0.1."""

    directory: Path
    port: int

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def add(self, name: str, data: bytes) -> str:
        (self.directory / name).write_bytes(data)
        return self.url(name)


@pytest.fixture
def served(tmp_path) -> Iterator[Served]:
    directory = tmp_path / "served"
    directory.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield Served(directory, server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture
def stalling_url() -> Iterator[str]:
    """A server that never answers: the kernel completes connections into the backlog of a socket that
    nobody accepts from, so a request is sent and then nothing arrives."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/slow.tgz"


@pytest.fixture
def sandbox(tmp_path) -> Path:
    """A sandbox with room around it: anything that escapes lands in tmp_path, where the tests look for it."""
    directory = tmp_path / "sandbox"
    directory.mkdir()
    return directory


def tar_archive(compression: str, members: dict[str, tuple[bytes, int]]) -> bytes:
    """A tar archive of regular files: name -> (content, mode)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as tar:
        for name, (data, mode) in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def zip_archive(members: dict[str, tuple[bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name, (data, mode) in members.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFREG | mode) << 16
            zipped.writestr(info, data)
    return buffer.getvalue()


APP = {"app/run.sh": (SCRIPT, 0o755), "app/data/readme.txt": (b"read me\n", 0o644)}
ARCHIVES = {
    ".tar": lambda: tar_archive("", APP),
    ".tar.gz": lambda: tar_archive("gz", APP),
    ".tgz": lambda: tar_archive("gz", APP),
    ".tar.bz2": lambda: tar_archive("bz2", APP),
    ".tbz2": lambda: tar_archive("bz2", APP),
    ".tar.xz": lambda: tar_archive("xz", APP),
    ".txz": lambda: tar_archive("xz", APP),
    ".zip": lambda: zip_archive(APP),
}


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- fetching, in this process -----------------------------------------------------------------------------


def test_a_plain_file_is_downloaded_under_the_basename_of_its_url(served, sandbox):
    url = served.add("data.txt", b"some data\n")
    fetch_all([{"value": url + "?version=2"}], sandbox)
    assert (sandbox / "data.txt").read_bytes() == b"some data\n"
    assert sorted(path.name for path in sandbox.iterdir()) == ["data.txt"]


def test_an_executable_is_made_executable_and_never_extracted(served, sandbox):
    url = served.add("tool.tar.gz", tar_archive("gz", APP))
    fetch_all([{"value": url, "executable": True, "extract": True}], sandbox)
    assert mode_of(sandbox / "tool.tar.gz") == 0o755
    assert not (sandbox / "app").exists()


@pytest.mark.parametrize("suffix", ARCHIVES)
def test_archives_are_extracted_into_the_sandbox_and_kept(served, sandbox, suffix):
    url = served.add(f"bundle{suffix}", ARCHIVES[suffix]())
    fetch_all([{"value": url}], sandbox)
    assert (sandbox / "app/data/readme.txt").read_bytes() == b"read me\n"
    assert (sandbox / "app/run.sh").read_bytes() == SCRIPT
    assert mode_of(sandbox / "app/run.sh") & 0o111, "scripts stay executable"
    assert (sandbox / f"bundle{suffix}").is_file(), "the archive stays, as in Mesos"


def test_a_single_gzipped_file_is_decompressed(served, sandbox):
    url = served.add("notes.txt.gz", gzip.compress(b"unzipped\n"))
    fetch_all([{"value": url}], sandbox)
    assert (sandbox / "notes.txt").read_bytes() == b"unzipped\n"


def test_extract_false_leaves_an_archive_packed(served, sandbox):
    url = served.add("bundle.tgz", tar_archive("gz", APP))
    fetch_all([{"value": url, "extract": False}], sandbox)
    assert sorted(path.name for path in sandbox.iterdir()) == ["bundle.tgz"]


def test_output_file_names_the_copy_inside_the_sandbox(served, sandbox):
    url = served.add("tool.sh", SCRIPT)
    bundle = served.add("download", tar_archive("gz", APP)) + "?id=7"
    fetch_all([{"value": url, "executable": True, "output_file": "bin/tool"},
               {"value": bundle, "output_file": "packages/app.tgz"}], sandbox)  # fmt: skip
    assert (sandbox / "bin/tool").read_bytes() == SCRIPT and mode_of(sandbox / "bin/tool") == 0o755
    assert (sandbox / "packages/app.tgz").is_file()
    assert (sandbox / "app/run.sh").is_file(), "an archive is extracted into the sandbox itself, as in Mesos"


@pytest.mark.parametrize("output_file", ["../escaped", "/tmp/escaped", "bin/../../escaped"])
def test_an_output_file_outside_the_sandbox_is_refused(served, sandbox, output_file):
    url = served.add("data.txt", b"data\n")
    with pytest.raises(FetchError) as raised:
        fetch_all([{"value": url, "output_file": output_file}], sandbox)
    assert str(raised.value) == f"Failed to fetch '{url}': output_file '{output_file}' is outside the sandbox"
    assert not (sandbox.parent / "escaped").exists()


def test_an_http_error_names_the_uri_and_the_status(served, sandbox):
    good = served.add("data.txt", b"data\n")
    missing = served.url("missing.tgz")
    with pytest.raises(FetchError) as raised:
        fetch_all([{"value": good}, {"value": missing}], sandbox)
    assert str(raised.value).startswith(f"Failed to fetch '{missing}': HTTP 404")


def test_a_refused_connection_names_the_uri(sandbox):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}/x.tgz"
        with pytest.raises(FetchError) as raised:
            fetch_all([{"value": url}], sandbox)
    assert str(raised.value) == f"Failed to fetch '{url}': Connection refused"


def test_a_stalled_download_fails_after_the_stall_timeout(sandbox, stalling_url):
    started = time.monotonic()
    with pytest.raises(FetchError) as raised:
        fetch_all([{"value": stalling_url}], sandbox, stall_timeout=0.5)
    assert str(raised.value) == f"Failed to fetch '{stalling_url}': the download stalled: nothing arrived for 0.5 s"
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "members",
    [
        {"../escaped": (b"x", 0o644)},
        {"/tmp/escaped": (b"x", 0o644)},
        {"inside/../../escaped": (b"x", 0o644)},
    ],
    ids=["dot-dot", "absolute", "dot-dot-deeper"],
)
@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_archive_members_outside_the_sandbox_are_refused(served, sandbox, members, kind):
    data = tar_archive("gz", members) if kind == "tar.gz" else zip_archive(members)
    url = served.add(f"evil.{kind}", data)
    with pytest.raises(FetchError) as raised:
        fetch_all([{"value": url}], sandbox)
    assert (
        str(raised.value) == f"Failed to fetch '{url}': archive member '{next(iter(members))}' is outside the sandbox"
    )
    assert not (sandbox.parent / "escaped").exists()


@pytest.mark.parametrize("target", ["/etc", "../.."], ids=["absolute", "relative"])
def test_archive_links_leading_out_of_the_sandbox_are_refused(served, sandbox, target):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, target
        tar.addfile(link)
        through = tarfile.TarInfo("link/escaped")
        through.size = 1
        tar.addfile(through, io.BytesIO(b"x"))
    url = served.add("links.tgz", buffer.getvalue())
    with pytest.raises(FetchError) as raised:
        fetch_all([{"value": url}], sandbox)
    assert str(raised.value).startswith(f"Failed to fetch '{url}': 'link' ")
    assert not (sandbox / "link").exists()
    assert not (sandbox.parent.parent / "escaped").exists()


def test_local_paths_and_file_uris_are_copied(tmp_path, sandbox):
    source = tmp_path / "local.txt"
    source.write_text("local\n")
    fetch_all([{"value": str(source)}, {"value": f"file://{source}", "output_file": "second.txt"},
               {"value": f"file://localhost{source}", "output_file": "third.txt"}], sandbox)  # fmt: skip
    assert [(sandbox / name).read_text() for name in ("local.txt", "second.txt", "third.txt")] == ["local\n"] * 3


@pytest.mark.parametrize(
    ("value", "cause"),
    [
        (
            "ftp://example.com/x.tgz",
            "URIs of scheme 'ftp' cannot be fetched (http, https, file and absolute paths can)",
        ),
        ("relative/x.tgz", "neither a URI nor an absolute path (this agent has no frameworks home for relative ones)"),
        ("file://elsewhere/x.tgz", "a file URI must name a file on this agent, not on 'elsewhere'"),
        ("/nonexistent/x.tgz", "No such file or directory: '/nonexistent/x.tgz'"),
        ("http://127.0.0.1:1/", "the URI names no file: give it an output_file"),
    ],
)
def test_what_cannot_be_fetched_is_said(sandbox, value, cause):
    with pytest.raises(FetchError) as raised:
        fetch_all([{"value": value}], sandbox)
    assert str(raised.value) == f"Failed to fetch '{value}': {cause}"


# -- the fetcher process -------------------------------------------------------------------------------------


def fetcher_processes(directory: Path) -> list[int]:
    """Pids of fetcher processes working on a sandbox in `directory` (or on `directory` itself)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command_line = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"mesolite.agent.fetcher" in command_line and any(
            argument.startswith(str(directory).encode()) for argument in command_line
        ):
            found.append(int(entry.name))
    return found


async def test_the_fetcher_process_logs_into_the_sandbox_stderr_and_reports_the_failure(served, sandbox):
    good = served.add("data.txt", b"data\n")
    missing = served.url("missing.tgz")
    (sandbox / "stderr").write_text("written before\n")
    with pytest.raises(FetchError) as raised:
        await fetcher.fetch([{"value": good}, {"value": missing}], sandbox, None)
    assert str(raised.value) == f"Failed to fetch '{missing}': HTTP 404 File not found"
    log = (sandbox / "stderr").read_text()
    assert log.startswith("written before\n"), "the fetcher appends to stderr"
    assert f"Fetching URI '{good}'" in log and f"Fetched '{good}' to 'data.txt'" in log
    assert f"Failed to fetch '{missing}': HTTP 404" in log
    assert (sandbox / "data.txt").read_bytes() == b"data\n"


async def test_cancelling_a_fetch_kills_the_fetcher_process(sandbox, stalling_url):
    fetching = asyncio.create_task(fetcher.fetch([{"value": stalling_url}], sandbox, None))
    await asyncio.to_thread(wait_for, lambda: fetcher_processes(sandbox), 10, what="the fetcher process")
    fetching.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(fetching, 5)
    assert fetcher_processes(sandbox) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can fetch as another user")
async def test_the_fetcher_process_fetches_as_the_tasks_user(served, tmp_path, sandbox):
    nobody = pwd.getpwnam("nobody")
    url = served.add("data.txt", b"data\n")
    # Archives too: what Python loads lazily to unpack them must not have to be read as the task's user.
    archives = [served.add(f"bundle{suffix}", ARCHIVES[suffix]()) for suffix in (".zip", ".tar.bz2", ".txz")]
    await fetcher.fetch([{"value": url.replace("127.0.0.1", "localhost")}, *({"value": a} for a in archives)],
                        sandbox, "nobody")  # fmt: skip
    assert (sandbox / "data.txt").stat().st_uid == nobody.pw_uid
    assert (sandbox / "app/run.sh").stat().st_uid == nobody.pw_uid
    assert sandbox.stat().st_uid == nobody.pw_uid, "the sandbox is the task user's, as the task's own"
    secret = tmp_path / "secret.txt"
    secret.write_text("root only\n")
    secret.chmod(0o600)
    with pytest.raises(FetchError) as raised:
        await fetcher.fetch([{"value": str(secret)}], sandbox, "nobody")
    assert str(raised.value) == f"Failed to fetch '{secret}': Permission denied: '{secret}'"
    with pytest.raises(FetchError) as raised:
        await fetcher.fetch([{"value": url}], sandbox, "no-such-user")
    assert str(raised.value) == "Failed to fetch URIs: there is no user 'no-such-user' on this agent"


# -- a real agent ------------------------------------------------------------------------------------------


def start_agent(launcher, home: AgentHome, master: FakeMaster):
    agent = launcher.start("agent", *home.arguments(master.address()), port=home.port)
    wait_for(lambda: get_json(agent.url("/metrics/snapshot"))["slave/registered"] == 1.0, 20, what="registration")
    return agent


@pytest.mark.integration
def test_a_command_task_runs_what_was_fetched_for_it(launcher, home, master, served):
    agent = start_agent(launcher, home, master)
    uris = [
        {"value": served.add("data.txt", b"fetched data\n")},
        {"value": served.add("tool.sh", SCRIPT), "executable": True},
        {"value": served.add("bundle.tgz", tar_archive("gz", APP))},
    ]
    user = "nobody" if os.geteuid() == 0 else None  # a task of another user reads what was fetched for it
    command = {"value": "cat data.txt && ./tool.sh a b && cat app/data/readme.txt && id -un", "uris": uris}
    master.run_task("fetching", command | ({"user": user} if user else {}))
    master.wait_for_state("fetching", "TASK_FINISHED")
    assert master.states("fetching") == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    directory = agent_tasks(agent.url())["fetching"]["directory"]
    output = read_sandbox_file(agent.url(), directory, "stdout").splitlines()
    assert output[:3] == ["fetched data", "tool ran with 2 arguments", "read me"]
    if user:
        assert output[3] == user
        assert Path(directory, "data.txt").stat().st_uid == pwd.getpwnam(user).pw_uid
    log = read_sandbox_file(agent.url(), directory, "stderr")
    assert f"Fetching URI '{uris[1]['value']}'" in log and f"Fetched '{uris[1]['value']}' to 'tool.sh'" in log


@pytest.mark.integration
def test_a_failed_fetch_fails_the_task_before_it_starts(launcher, home, master, served):
    start_agent(launcher, home, master)
    missing = served.url("missing.tgz")
    master.run_task("unfetched", {"value": "echo must not run", "uris": [{"value": missing}]})
    failed = master.wait_for_state("unfetched", "TASK_FAILED")["status"]
    assert master.states("unfetched") == ["TASK_STARTING", "TASK_FAILED"]
    assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
    assert failed["message"] == f"Failed to fetch '{missing}': HTTP 404 File not found"


@pytest.mark.integration
def test_a_kill_while_fetching_ends_the_task_killed(launcher, home, master, stalling_url):
    start_agent(launcher, home, master)
    master.run_task("stalled", {"value": "echo must not run", "uris": [{"value": stalling_url}]})
    master.wait_for_state("stalled", "TASK_STARTING")
    asked = time.monotonic()
    master.kill_task("stalled", grace_seconds=10)
    killed = master.wait_for_state("stalled", "TASK_KILLED", timeout=10)["status"]
    assert time.monotonic() - asked < 5, "the fetch is cancelled at once, not after its stall timeout"
    assert killed["message"] == "Killed while fetching URIs"
    assert master.states("stalled") == ["TASK_STARTING", "TASK_KILLED"]
    assert fetcher_processes(home.work_dir) == []
