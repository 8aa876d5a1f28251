"""pymesos 0.3.15, unmodified, as an independent Mesos client of a real cluster.

Real ZooKeeper, a real master and a real agent (processes); pymesos's `MesosSchedulerDriver` is given only
the zk:// URL, as its users do. pymesos is installed by scripts/install-pymesos.sh (its Python files plus
http-parser's pure-Python parser: the C extension does not build on Python 3.11).

pymesos runs its scheduler callbacks in its own IO thread; an exception there makes it interrupt the main
thread, so the callbacks below only record what they see and the test asserts from the main thread.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator

import pytest
from pymesos_testing import TIMEOUT, RecordingScheduler

from harness.cluster import MasterAndAgent, start_master_and_agent
from harness.http import get_json
from harness.processes import ProcessLauncher
from harness.waiting import wait_for
from harness.zookeeper import ZooKeeperServer

pytestmark = [
    pytest.mark.integration,
    # http-parser 0.9.0's pure-Python parser has regexes without raw strings (not ours to change).
    pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning"),
]


@pytest.fixture
def cluster(launcher: ProcessLauncher, zookeeper: ZooKeeperServer, tmp_path) -> MasterAndAgent:
    return start_master_and_agent(launcher, zookeeper, tmp_path, ("--allocation_interval=200ms",), timeout=TIMEOUT)


@pytest.fixture
def pymesos_driver(cluster: MasterAndAgent) -> Iterator[tuple[object, RecordingScheduler]]:
    """An unmodified pymesos driver for the cluster's zk:// URL; stopped (which tears the framework down)
    and joined at the end, so that its IO thread never outlives the test."""
    try:
        from pymesos import MesosSchedulerDriver
    except ImportError as error:
        pytest.fail(f"pymesos is not installed ({error}): run scripts/install-pymesos.sh .venv (make venv does)")
    recorder = RecordingScheduler()
    framework = {"user": getpass.getuser(), "name": "pymesos-compat", "hostname": "127.0.0.1"}
    driver = MesosSchedulerDriver(recorder.as_pymesos(), framework, cluster.zk_url, use_addict=False)
    driver.start()
    yield driver, recorder
    driver.stop()
    driver.join()


def test_pymesos_detects_the_master_launches_kills_and_reconciles(cluster, pymesos_driver):
    driver, recorder = pymesos_driver

    # Detection through ZooKeeper (pymesos reads `address.ip`/`port` of the leader's json.info_ node),
    # then SUBSCRIBED; pymesos fetched /version and parses it as integers.
    wait_for(lambda: recorder.registered, TIMEOUT, what="pymesos to register through the zk:// URL")
    framework_id, master_info = recorder.registered[0]
    assert master_info == {"hostname": "127.0.0.1", "port": cluster.master.port, "version": "1.11.0"}

    # Command tasks launched on the first offer run to their ends (pymesos acknowledges implicitly).
    wait_for(
        lambda: (
            "TASK_FINISHED" in recorder.states("quick")
            and "TASK_FAILED" in recorder.states("failing")
            and "TASK_RUNNING" in recorder.states("sleeper")
        ),
        TIMEOUT,
        what="quick FINISHED, failing FAILED, sleeper RUNNING",
    )
    assert recorder.states("quick")[-2:] == ["TASK_RUNNING", "TASK_FINISHED"]
    with recorder.lock:
        failed = next(status for status in recorder.statuses if status["state"] == "TASK_FAILED")
        first_running = next(status for status in recorder.statuses if status["state"] == "TASK_RUNNING")
    assert "3" in failed["message"]
    assert first_running["agent_id"] == {"value": recorder.launched_on}
    assert first_running["source"] == "SOURCE_EXECUTOR" and first_running["uuid"]

    # The implicit acknowledgements reached the agent: terminal tasks left the framework's live tasks.
    def completed_task_states() -> dict[str, str]:
        (framework,) = get_json(cluster.master.url("/master/state"))["frameworks"]
        assert framework["id"] == framework_id["value"]
        return {task["id"]: task["state"] for task in framework["completed_tasks"]}

    wait_for(
        lambda: completed_task_states() == {"quick": "TASK_FINISHED", "failing": "TASK_FAILED"},
        TIMEOUT,
        what="the acknowledged terminal tasks to be completed in /master/state",
    )

    # Explicit reconciliation (pymesos sends task ids only), of a live task and of one never launched;
    # then implicit reconciliation (no task ids): the live task again.
    driver.reconcileTasks([{"task_id": {"value": "sleeper"}}, {"task_id": {"value": "never-launched"}}])
    wait_for(
        lambda: recorder.reconciliations("sleeper") and recorder.reconciliations("never-launched"),
        TIMEOUT,
        what="answers to the explicit reconciliation",
    )
    assert [status["state"] for status in recorder.reconciliations("sleeper")] == ["TASK_RUNNING"]
    (unknown,) = recorder.reconciliations("never-launched")
    assert unknown["state"] == "TASK_LOST" and "uuid" not in unknown  # nothing to acknowledge
    driver.reconcileTasks([])
    wait_for(lambda: len(recorder.reconciliations("sleeper")) == 2, TIMEOUT, what="the implicit reconciliation")
    assert recorder.reconciliations("sleeper")[-1]["state"] == "TASK_RUNNING"

    # Kill through pymesos (KILL with the task id only).
    driver.killTask({"value": "sleeper"})
    wait_for(lambda: "TASK_KILLED" in recorder.states("sleeper"), TIMEOUT, what="sleeper to be KILLED")
    assert recorder.errors == []

    # Stopping the driver without failover tears the framework down.
    driver.stop()
    driver.join()
    wait_for(
        lambda: (
            [framework["id"] for framework in get_json(cluster.master.url("/master/state"))["completed_frameworks"]]
            == [framework_id["value"]]
        ),
        TIMEOUT,
        what="pymesos's TEARDOWN to complete the framework",
    )
