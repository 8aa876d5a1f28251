"""Docker tasks under the real `mesolite executor` process: events, and an executor that dies and comes back."""

# ruff: noqa: F811 - pytest fixtures imported from docker_testing are redefined as parameters

from __future__ import annotations

import os
import signal

from docker_testing import (  # noqa: F401 - fixtures
    COUNTING_COMMAND,
    DOCKER_INTEGRATION,
    cleanup_containers,
    counted_lines,
    docker_api,
    docker_task,
    events,
    make_run,
    rootfs_image,
    start_executor,
    stdout_of,
)

from harness.waiting import wait_for

pytestmark = DOCKER_INTEGRATION


def test_an_executor_that_dies_is_replaced_without_restarting_the_container_or_repeating_output(tmp_path, rootfs_image):
    run = make_run(tmp_path, docker_task(rootfs_image, COUNTING_COMMAND))
    log_path = tmp_path / "executor.log"
    first = start_executor(run, log_path)
    try:
        wait_for(lambda: "line 5\n" in stdout_of(run), 30, what=f"output (log: {log_path})")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)

        second = start_executor(run, log_path)
        wait_for(lambda: "Re-attaching to container" in log_path.read_text(), 30, what="the second executor")
        written = stdout_of(run).count("\n")
        wait_for(lambda: stdout_of(run).count("\n") > written + 3, 30, what="the second executor's copy")
        (run.sandbox / "stop").touch()
        assert second.wait(60) == 0, log_path.read_text()
    finally:
        for process in (first, locals().get("second")):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)

    states = [event["state"] for event in events(run)]
    assert states == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"], states
    # Every line once: a second container (or a copy started over) would have repeated the first ones.
    assert counted_lines(stdout_of(run)) > written


def test_sigterm_to_the_executor_kills_the_container_with_the_requested_grace_period(tmp_path, rootfs_image):
    run = make_run(tmp_path, docker_task(rootfs_image, "trap 'echo stopping; exit 0' TERM; echo up; sleep 600 & wait"))
    log_path = tmp_path / "executor.log"
    executor = start_executor(run, log_path)
    try:
        wait_for(lambda: any(e["state"] == "TASK_RUNNING" for e in events(run)), 30, what="TASK_RUNNING")
        wait_for(lambda: "up\n" in stdout_of(run), 10, what="the task's first output")
        (run.run_dir / "kill.request").write_text('{"grace_period_seconds": 5}')  # as the agent does, then:
        executor.send_signal(signal.SIGTERM)
        assert executor.wait(30) != 0
    finally:
        if executor.poll() is None:
            os.killpg(executor.pid, signal.SIGKILL)
    final = events(run)[-1]
    assert final["state"] == "TASK_KILLED", log_path.read_text()
    assert "stopping" in stdout_of(run)  # it got the polite signal first


def test_a_new_executor_carries_out_the_kill_its_dead_predecessor_never_heard_of(tmp_path, rootfs_image, docker_api):
    run = make_run(tmp_path, docker_task(rootfs_image, "trap 'echo stopping; exit 0' TERM; echo up; sleep 600 & wait"))
    log_path = tmp_path / "executor.log"
    first = start_executor(run, log_path)
    second = None
    try:
        wait_for(lambda: "up\n" in stdout_of(run), 30, what="the task's first output")
        os.killpg(first.pid, signal.SIGKILL)  # the executor dies ...
        first.wait(10)
        (run.run_dir / "kill.request").write_text('{"grace_period_seconds": 5}')  # ... before the agent's kill
        second = start_executor(run, log_path)  # what the agent does for a docker run whose executor died
        assert second.wait(30) != 0, log_path.read_text()
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
    assert [event["state"] for event in events(run)] == ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLED"]
    assert "stopping" in stdout_of(run)  # stopped politely, by the kill's grace period
    assert docker_api.containers(all=True, filters={"name": f"mesos-{run.container_id}"}) == []
