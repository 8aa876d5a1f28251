"""pymesos 0.3.15, unmodified, with `principal`/`secret` against a master that authenticates frameworks (issue 12).

The master runs with Mesos's flags (`--authenticate_frameworks --authenticate_http_frameworks
--http_framework_authenticators=basic --credentials=<file>`); pymesos sends `Authorization: Basic` on its
SUBSCRIBE and its calls, as it does against Mesos. pymesos speaks plain http only (its own socket code), so TLS
is not part of this test; see tests/cli/test_cli_security.py for the https runbook.
"""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Iterator

import pytest
from pymesos_testing import TIMEOUT, RecordingScheduler

from harness.cluster import start_master_and_agent
from harness.http import get_json
from harness.processes import MesoliteProcess, ProcessLauncher
from harness.waiting import wait_for
from harness.zookeeper import ZooKeeperServer

pytestmark = [
    pytest.mark.integration,
    # http-parser 0.9.0's pure-Python parser has regexes without raw strings (not ours to change).
    pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning"),
]

PRINCIPAL, SECRET = "pymesos", "s3cret"


@pytest.fixture
def secured_master(
    launcher: ProcessLauncher, zookeeper: ZooKeeperServer, tmp_path
) -> Iterator[tuple[str, MesoliteProcess]]:
    """A master that authenticates frameworks, and one agent; the zk:// URL and the master."""
    credentials = tmp_path / "credentials"
    credentials.write_text(json.dumps({"credentials": [{"principal": PRINCIPAL, "secret": SECRET}]}))
    credentials.chmod(0o600)
    authentication = (
        "--allocation_interval=200ms", "--authenticate_frameworks", "--authenticate_http_frameworks",
        "--http_framework_authenticators=basic", f"--credentials={credentials}",
    )  # fmt: skip
    started = start_master_and_agent(launcher, zookeeper, tmp_path, authentication, timeout=TIMEOUT)
    yield started.zk_url, started.master


def start_driver(zk_url: str, secret: str) -> tuple[object, RecordingScheduler]:
    try:
        from pymesos import MesosSchedulerDriver
    except ImportError as error:
        pytest.fail(f"pymesos is not installed ({error}): run scripts/install-pymesos.sh .venv (make venv does)")
    recorder = RecordingScheduler()
    # As pymesos's users do against Mesos: FrameworkInfo names the principal the credentials are for.
    framework = {"user": getpass.getuser(), "name": "pymesos-secured", "hostname": "127.0.0.1", "principal": PRINCIPAL}
    driver = MesosSchedulerDriver(
        recorder.as_pymesos(), framework, zk_url, use_addict=False, principal=PRINCIPAL, secret=secret
    )
    driver.start()
    return driver, recorder


def test_pymesos_with_principal_and_secret_registers_and_runs_tasks(secured_master):
    zk_url, master = secured_master
    driver, recorder = start_driver(zk_url, SECRET)
    try:
        wait_for(lambda: recorder.registered, TIMEOUT, what="pymesos to register with its credentials")
        # Its calls (ACCEPT, implicit ACKNOWLEDGE) carry the credentials too: the tasks run to their ends.
        wait_for(
            lambda: "TASK_FINISHED" in recorder.states("quick") and "TASK_FAILED" in recorder.states("failing"),
            TIMEOUT,
            what="quick FINISHED and failing FAILED",
        )
        (framework,) = get_json(master.url("/master/state"))["frameworks"]
        assert framework["principal"] == PRINCIPAL
        assert recorder.errors == []
    finally:
        driver.stop()
        driver.join()


def test_pymesos_with_a_wrong_secret_is_refused_with_401(secured_master):
    zk_url, master = secured_master
    driver, recorder = start_driver(zk_url, "guess")
    try:
        # pymesos ends its IO thread on any status but 200/307/503 and re-raises the error in the main thread
        # (as against Mesos): a 401 must not look like a master to retry.
        # (`interrupt_main` wakes no blocking sleep: the main thread waits in short steps.)
        deadline = time.monotonic() + TIMEOUT
        with pytest.raises(RuntimeError, match="Failed with HTTP 401"):
            while time.monotonic() < deadline:
                time.sleep(0.1)
        assert recorder.registered == []
        assert get_json(master.url("/master/state"))["frameworks"] == []
    finally:
        driver.stop()
        driver.join()
