"""Fixtures shared by the runtime tests: a real ZooKeeper server, real mesolite processes, test certificates.

What the fixtures are built from is in the `harness` package (importable by every test module).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from tls_testing import ClusterPki, make_cluster_pki

from harness.processes import ProcessLauncher, stop_process
from harness.zookeeper import ZooKeeperServer, start_zookeeper


@pytest.fixture(scope="session")
def zookeeper(tmp_path_factory) -> Iterator[ZooKeeperServer]:
    """A real ZooKeeper for the whole test session (tests isolate themselves by chroot)."""
    server = start_zookeeper(tmp_path_factory.mktemp("zookeeper"))
    yield server
    stop_process(server.process)


@pytest.fixture(scope="session")
def cluster_pki(tmp_path_factory) -> ClusterPki:
    """A cluster CA with a certificate for 127.0.0.1/localhost, and an unrelated CA with its own certificate."""
    return make_cluster_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def launcher(tmp_path, request) -> Iterator[ProcessLauncher]:
    """Start real mesolite processes; their logs are printed when the test fails."""
    processes = ProcessLauncher(tmp_path)
    yield processes
    processes.stop_all()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for started in processes.started:
            print(f"\n===== log of {started.name} ({' '.join(started.arguments[2:])}) =====\n{started.log()[-8000:]}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def pytest_report_header() -> str:
    java = shutil.which("java") or "missing"
    return f"mesolite runtime tests; java: {java}"
