"""Mesos-style health checks of Docker tasks under the real `mesolite executor` and the real dockerd: COMMAND
checks run inside the container, HTTP checks of a BRIDGE task reach its container port."""

# ruff: noqa: F811 - pytest fixtures imported from docker_testing are redefined as parameters

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

from docker_testing import (  # noqa: F401 - fixtures
    DOCKER_INTEGRATION,
    cleanup_containers,
    docker_api,
    docker_task,
    events,
    make_run,
    nginx_image,
    rootfs_image,
    start_executor,
    stdout_of,
)

from harness.waiting import wait_for

pytestmark = DOCKER_INTEGRATION

REASON = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"


def health_check(kind: str, **fields) -> dict:
    """A check that starts at once and repeats twice a second."""
    return {"type": kind, "delay_seconds": 0, "interval_seconds": 0.5, "timeout_seconds": 5, **fields}


def health_events(run) -> list[dict]:
    return [event for event in events(run) if "healthy" in event]


def kill_and_wait(executor: subprocess.Popen, run) -> None:
    """Kill the task as the agent does (at once: nothing of it needs a grace period) and wait for its end."""
    (run.run_dir / "kill.request").write_text('{"grace_period_seconds": 0}')
    executor.send_signal(signal.SIGTERM)
    executor.wait(30)


def stop(executor: subprocess.Popen) -> None:
    if executor.poll() is None:
        os.killpg(executor.pid, signal.SIGKILL)
        executor.wait(10)


def test_a_command_check_sees_a_file_that_only_the_container_has(tmp_path, rootfs_image):
    marker = f"/tmp/mesolite-inside-only-{uuid.uuid4().hex[:8]}"
    assert not Path(marker).exists()  # on the host, the check would fail
    task = docker_task(rootfs_image, f"touch {marker} && exec sleep 600")
    # The argv form: `test -f <marker>` executed directly in the container.
    command = {"shell": False, "value": "test", "arguments": ["test", "-f", marker]}
    task["health_check"] = health_check("COMMAND", command=command, grace_period_seconds=20)
    run = make_run(tmp_path, task)
    log_path = tmp_path / "executor.log"
    executor = start_executor(run, log_path)
    try:
        healthy = wait_for(lambda: health_events(run), 30, what=f"a health event (log: {log_path})")[0]
        kill_and_wait(executor, run)
    finally:
        stop(executor)
    assert healthy["state"] == "TASK_RUNNING"
    assert healthy["healthy"] is True, healthy
    assert healthy["reason"] == REASON
    assert events(run)[-1]["state"] == "TASK_KILLED"


def test_a_command_check_that_fails_in_the_container_gets_the_task_killed(tmp_path, rootfs_image):
    host_only = tmp_path / "host-only"
    host_only.touch()  # on the host, the check would pass
    task = docker_task(rootfs_image, "exec sleep 600")
    task["kill_policy"] = {"grace_period": {"nanoseconds": 0}}  # sleep as pid 1 ignores SIGTERM: no waiting
    check = health_check("COMMAND", command={"value": f"test -f {host_only}"}, consecutive_failures=2)
    task["health_check"] = {**check, "grace_period_seconds": 0}
    run = make_run(tmp_path, task)
    log_path = tmp_path / "executor.log"
    executor = start_executor(run, log_path)
    try:
        assert executor.wait(30) != 0, log_path.read_text()  # it ends by itself: the checker kills the task
    finally:
        stop(executor)
    unhealthy, killed = health_events(run)
    assert (unhealthy["state"], unhealthy["healthy"]) == ("TASK_RUNNING", False)
    assert "command exited with status 1" in unhealthy["message"]
    assert (killed["state"], killed["healthy"], killed["reason"]) == ("TASK_KILLED", False, REASON)
    assert "COMMAND health check failed 2 times" in killed["message"]


def test_an_http_check_of_a_bridge_task_reaches_its_container_port(tmp_path, nginx_image):
    # No port mappings: nginx's port 80 is reachable only at the container's own address.
    task = docker_task(nginx_image, shell=False, network="BRIDGE")
    task["health_check"] = health_check("HTTP", http={"port": 80, "path": "/"}, grace_period_seconds=20)
    run = make_run(tmp_path, task)
    log_path = tmp_path / "executor.log"
    executor = start_executor(run, log_path)
    try:
        healthy = wait_for(lambda: health_events(run), 30, what=f"a health event (log: {log_path})")[0]
        # The request reached this container's nginx (its access log), not something on the host's port 80.
        wait_for(lambda: "mesolite-health-check" in stdout_of(run), 10, what="the check in nginx's access log")
        kill_and_wait(executor, run)
    finally:
        stop(executor)
    assert (healthy["state"], healthy["healthy"]) == ("TASK_RUNNING", True), healthy
    network = healthy["container_status"]["network_infos"][0]
    assert network["ip_addresses"][0]["ip_address"] != "127.0.0.1"
