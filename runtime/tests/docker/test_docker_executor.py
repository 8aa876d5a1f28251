"""Docker tasks under the real `mesolite executor` process: events, and an executor that dies and comes back."""

# ruff: noqa: F811 - pytest fixtures imported from docker_testing are redefined as parameters

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from docker_testing import (  # noqa: F401 - fixtures
    cleanup_containers,
    docker_api,
    docker_task,
    events,
    make_run,
    requires_docker,
    rootfs_image,
)

from conftest import wait_for

pytestmark = [
    pytest.mark.docker,
    pytest.mark.integration,
    requires_docker,
    pytest.mark.usefixtures("cleanup_containers"),
]


def start_executor(run, log_path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mesolite.cli", "executor", "--run-dir", str(run.run_dir), "--foreground"],
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def stdout_of(run) -> str:
    path = run.sandbox / "stdout"
    return path.read_text() if path.exists() else ""


def test_an_executor_that_dies_is_replaced_without_restarting_the_container_or_repeating_output(tmp_path, rootfs_image):
    task = docker_task(rootfs_image, "for i in $(seq 1 30); do echo line $i; sleep 0.1; done")
    run = make_run(tmp_path, task)
    log_path = tmp_path / "executor.log"
    first = start_executor(run, log_path)
    try:
        wait_for(lambda: "line 5\n" in stdout_of(run), 30, what=f"output (log: {log_path})")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)

        second = start_executor(run, log_path)
        assert second.wait(60) == 0, log_path.read_text()
    finally:
        for process in (first, locals().get("second")):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)

    assert "Re-attaching to container" in log_path.read_text()
    states = [event["state"] for event in events(run)]
    assert states == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"], states
    # Every line once: a second container (or a copy started over) would have repeated the first ones.
    assert stdout_of(run) == "".join(f"line {i}\n" for i in range(1, 31))


def test_sigterm_to_the_executor_kills_the_container_with_the_requested_grace_period(tmp_path, rootfs_image):
    run = make_run(tmp_path, docker_task(rootfs_image, "trap 'echo stopping; exit 0' TERM; echo up; sleep 600 & wait"))
    (run.run_dir / "kill.request").write_text('{"grace_period_seconds": 5}')
    log_path = tmp_path / "executor.log"
    executor = start_executor(run, log_path)
    try:
        wait_for(lambda: any(e["state"] == "TASK_RUNNING" for e in events(run)), 30, what="TASK_RUNNING")
        wait_for(lambda: "up\n" in stdout_of(run), 10, what="the task's first output")
        executor.send_signal(signal.SIGTERM)
        assert executor.wait(30) != 0
    finally:
        if executor.poll() is None:
            os.killpg(executor.pid, signal.SIGKILL)
    final = events(run)[-1]
    assert final["state"] == "TASK_KILLED", log_path.read_text()
    assert "stopping" in stdout_of(run)  # it got the polite signal first
