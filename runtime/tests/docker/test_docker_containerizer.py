"""The Docker containerizer against the real dockerd, driven the way `mesolite executor` drives it."""

# ruff: noqa: F811 - pytest fixtures imported from docker_testing are redefined as parameters

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
import uuid

import docker.errors
import pytest
from docker_testing import (  # noqa: F401 - fixtures
    COUNTING_COMMAND,
    DOCKER_INTEGRATION,
    ROOTFS_IMAGE,
    TEST_LABEL,
    TEST_SESSION,
    DockerSocketProxy,
    cleanup_containers,
    counted_lines,
    docker_api,
    docker_task,
    events,
    free_port_range,
    make_run,
    nginx_image,
    private_dockerd,
    rootfs_image,
)

from harness.waiting import eventually
from mesolite.agent.containerizers.base import AgentOptions
from mesolite.agent.containerizers.docker.containerizer import DockerContainerizer
from mesolite.agent.containerizers.docker.spec import LABEL_TASK_ID, LABEL_WORK_DIR, TaskIdentity, container_spec

pytestmark = DOCKER_INTEGRATION


def running_event(run) -> dict | None:
    return next((event for event in events(run) if event["state"] == "TASK_RUNNING"), None)


def sandbox_text(run, name: str = "stdout") -> str:
    path = run.sandbox / name
    return path.read_text() if path.exists() else ""


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.read().decode()


async def test_bridge_task_is_reachable_at_its_host_port_and_killed_within_the_grace_period(
    tmp_path, nginx_image, docker_api
):
    host_port, _ = free_port_range()
    task = docker_task(
        nginx_image,
        shell=False,
        network="BRIDGE",
        ports=(host_port, host_port),
        port_mappings=[{"host_port": host_port, "container_port": 80, "protocol": "tcp"}],
    )
    run = make_run(tmp_path, task)
    containerizer = DockerContainerizer(run.options)
    assert containerizer.validate(task, run.options) is None
    running = asyncio.create_task(containerizer.run(run))

    event = await eventually(lambda: running_event(run), within=30, what="TASK_RUNNING")
    network = event["container_status"]["network_infos"][0]
    assert network["ip_addresses"][0]["ip_address"].count(".") == 3
    assert network["port_mappings"] == [{"host_port": host_port, "container_port": 80, "protocol": "tcp"}]
    inspection = docker_api.inspect_container(f"mesos-{run.container_id}")
    assert inspection["Config"]["Labels"][LABEL_TASK_ID] == run.task_id
    assert inspection["HostConfig"]["CpuShares"] == 102  # cpus 0.1
    assert inspection["HostConfig"]["Memory"] == 64 * 2**20  # mem 64

    page = await eventually(
        lambda: _try_get(f"http://127.0.0.1:{host_port}/"), within=15, what="nginx on the mapped port"
    )
    assert "Welcome to nginx!" in page
    # nginx logs each request to stdout, which the sandbox gets.
    await eventually(lambda: "GET / HTTP" in sandbox_text(run), within=10, what="nginx's access log in the sandbox")

    started = time.monotonic()
    await containerizer.kill(run, grace_period=2)
    termination = await asyncio.wait_for(running, 30)
    assert termination.state == "TASK_KILLED"
    assert time.monotonic() - started < 2 + 10  # nginx stops at once on SIGQUIT; slack for a loaded machine
    with pytest.raises(docker.errors.NotFound):
        docker_api.inspect_container(f"mesos-{run.container_id}")


def _try_get(url: str) -> str | None:
    try:
        return http_get(url)
    except OSError:
        return None


async def test_a_task_that_ignores_sigterm_is_killed_once_the_grace_period_is_over(tmp_path, rootfs_image):
    run = make_run(tmp_path, docker_task(rootfs_image, "trap '' TERM; echo ready; while true; do sleep 0.1; done"))
    containerizer = DockerContainerizer(run.options)
    running = asyncio.create_task(containerizer.run(run))
    await eventually(lambda: "ready" in sandbox_text(run), within=30, what="the task to start")
    started = time.monotonic()
    await containerizer.kill(run, grace_period=1)
    termination = await asyncio.wait_for(running, 30)
    elapsed = time.monotonic() - started
    assert termination.state == "TASK_KILLED"
    assert termination.exit_status == 137  # SIGKILL after the grace period
    assert 1 <= elapsed < 1 + 10  # the grace period was given, then SIGKILL (slack for a loaded machine)


async def test_a_check_command_runs_in_the_container_and_is_killed_when_it_times_out(
    tmp_path, rootfs_image, docker_api
):
    run = make_run(tmp_path, docker_task(rootfs_image, "exec sleep 600"))
    containerizer = DockerContainerizer(run.options)
    running = asyncio.create_task(containerizer.run(run))
    await eventually(lambda: running_event(run), within=30, what="TASK_RUNNING")
    variables = {"variables": [{"name": "CODE", "value": "3"}]}  # the check's own, on top of the container's
    check = {"value": 'test -n "$MESOS_TASK_ID" && exit "$CODE"', "environment": variables}
    assert await containerizer.run_check_command(run, check) == 3

    hanging = {"shell": False, "value": "sleep", "arguments": ["sleep", "77"]}
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(containerizer.run_check_command(run, hanging), 0.5)

    def check_processes() -> list[str]:
        return [process[-1] for process in docker_api.top(f"mesos-{run.container_id}")["Processes"]]

    await eventually(
        lambda: "sleep 77" not in check_processes(), within=5, what="the timed-out check's process to be killed"
    )
    await containerizer.kill(run, grace_period=0)
    assert (await asyncio.wait_for(running, 30)).state == "TASK_KILLED"


async def test_exit_codes_and_output_reach_the_sandbox(tmp_path, rootfs_image):
    failing = make_run(tmp_path, docker_task(rootfs_image, "echo to-stdout; echo to-stderr >&2; exit 3"))
    termination = await DockerContainerizer(failing.options).run(failing)
    assert termination.state == "TASK_FAILED"
    assert termination.exit_status == 3 and "status 3" in termination.message
    assert (failing.sandbox / "stdout").read_text() == "to-stdout\n"
    assert (failing.sandbox / "stderr").read_text() == "to-stderr\n"
    assert running_event(failing) is not None  # it did run, however briefly

    finishing = make_run(tmp_path, docker_task(rootfs_image, "/bin/echo", shell=False, arguments=["a b", "c"]))
    termination = await DockerContainerizer(finishing.options).run(finishing)
    assert termination.state == "TASK_FINISHED"
    assert (finishing.sandbox / "stdout").read_text() == "a b c\n"


async def test_a_task_over_its_memory_limit_fails_saying_so(tmp_path, rootfs_image):
    # tail keeps everything since the last newline: /dev/zero has none.
    run = make_run(tmp_path, docker_task(rootfs_image, "tail /dev/zero"))
    termination = await asyncio.wait_for(DockerContainerizer(run.options).run(run), 60)
    assert termination.state == "TASK_FAILED"
    assert termination.reason == "REASON_CONTAINER_LIMITATION_MEMORY", termination.message


async def test_force_pull_fails_the_task_when_the_registry_cannot_be_reached(tmp_path, rootfs_image):
    task = docker_task(rootfs_image, "true")
    task["container"]["docker"]["force_pull_image"] = True
    run = make_run(tmp_path, task)
    termination = await DockerContainerizer(run.options).run(run)
    assert termination.state == "TASK_FAILED"
    assert f"Failed to pull image '{rootfs_image}' (force_pull_image is set)" in termination.message


async def test_sandbox_is_mounted_and_environment_is_set(tmp_path, rootfs_image):
    task = docker_task(rootfs_image, 'echo "$MESOS_TASK_ID $GREETING" > "$MESOS_SANDBOX/written"')
    task["command"]["environment"] = {"variables": [{"name": "GREETING", "value": "hello"}]}
    run = make_run(tmp_path, task)
    termination = await DockerContainerizer(run.options).run(run)
    assert termination.state == "TASK_FINISHED", termination.message
    assert (run.sandbox / "written").read_text() == f"{run.task_id} hello\n"


async def test_a_missing_image_fails_the_task_naming_the_image(tmp_path):
    image = f"mesolite-test/does-not-exist-{uuid.uuid4().hex[:8]}:1"
    run = make_run(tmp_path, docker_task(image, "true"))
    termination = await DockerContainerizer(run.options).run(run)
    assert termination.state == "TASK_FAILED"
    assert termination.reason == "REASON_CONTAINER_LAUNCH_FAILED"
    assert f"Image '{image}'" in termination.message
    assert running_event(run) is None


async def test_a_container_an_earlier_executor_created_but_never_started_is_started(tmp_path, rootfs_image, docker_api):
    run = make_run(tmp_path, docker_task(rootfs_image, "echo started once"))
    identity = TaskIdentity(run.container_id, run.task_id, run.framework_id, run.agent_id, run.executor_id)
    spec = container_spec(run.task, identity, str(run.sandbox), run.options)
    host_config = docker_api.create_host_config(**spec.host)
    docker_api.create_container(spec.image, name=spec.name, host_config=host_config, **spec.create)

    termination = await DockerContainerizer(run.options).run(run)

    assert termination.state == "TASK_FINISHED", termination.message
    assert sandbox_text(run) == "started once\n"


async def test_kill_before_the_container_starts_reports_killed(tmp_path, rootfs_image):
    run = make_run(tmp_path, docker_task(rootfs_image, "sleep 600"))
    containerizer = DockerContainerizer(run.options)
    await containerizer.kill(run, grace_period=1)
    termination = await containerizer.run(run)
    assert termination.state == "TASK_KILLED"
    assert running_event(run) is None


def test_host_port_outside_the_offer_and_privileged_are_task_errors(nginx_image):
    options = AgentOptions()
    containerizer = DockerContainerizer(options)
    outside = docker_task(
        nginx_image,
        network="BRIDGE",
        ports=(31000, 31000),
        port_mappings=[{"host_port": 31001, "container_port": 80}],
    )
    assert "host_port 31001 is not in the task's ports resource [31000-31000]" in containerizer.validate(
        outside, options
    )
    privileged = docker_task(nginx_image, privileged=True)
    assert "privileged is not allowed" in containerizer.validate(privileged, options)


async def test_orphaned_mesos_containers_are_removed_and_reported(tmp_path, docker_api, rootfs_image):
    work_dir = str(tmp_path)
    options = AgentOptions(work_dir=work_dir)

    def leave_container(container_id: str, owner: str) -> str:
        name = f"mesos-{container_id}"
        docker_api.create_container(
            rootfs_image,
            command=["sleep", "600"],
            name=name,
            labels={TEST_LABEL: TEST_SESSION, LABEL_WORK_DIR: owner, LABEL_TASK_ID: f"task-of-{container_id[:8]}"},
        )
        docker_api.start(name)
        return name

    orphan = leave_container(str(uuid.uuid4()), work_dir)
    known_id = str(uuid.uuid4())
    known = leave_container(known_id, work_dir)
    other_agents = leave_container(str(uuid.uuid4()), work_dir + "-another-agent")

    cleaned = await DockerContainerizer(options).recover({known_id}, options)

    assert len(cleaned) == 1 and cleaned[0].startswith(orphan) and "task-of-" in cleaned[0]
    with pytest.raises(docker.errors.NotFound):
        docker_api.inspect_container(orphan)
    assert docker_api.inspect_container(known)["State"]["Running"]
    assert docker_api.inspect_container(other_agents)["State"]["Running"]

    # With --no-docker_kill_orphans they are left alone.
    second_orphan = leave_container(str(uuid.uuid4()), work_dir)
    leaving = AgentOptions(work_dir=work_dir, docker_kill_orphans=False)
    assert await DockerContainerizer(leaving).recover({known_id}, leaving) == []
    assert docker_api.inspect_container(second_orphan)["State"]["Running"]


async def test_a_dockerd_restart_loses_neither_the_task_nor_a_log_line(tmp_path, rootfs_image):
    proxy = DockerSocketProxy(tmp_path / "docker.sock").start()
    options = AgentOptions(work_dir=str(tmp_path), docker_socket=str(proxy.path))
    run = make_run(tmp_path, docker_task(rootfs_image, COUNTING_COMMAND), options)
    containerizer = DockerContainerizer(options)
    try:
        running = asyncio.create_task(containerizer.run(run))
        await eventually(lambda: "line 3\n" in sandbox_text(run), within=30, what="the first lines")
        # dockerd "restarts" twice while the container keeps writing (as with live-restore).
        await asyncio.to_thread(proxy.interrupt, 1.0)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(proxy.interrupt, 0.5)
        written = await eventually(lambda: sandbox_text(run).count("\n"), within=30, what="output after the restarts")
        await eventually(lambda: sandbox_text(run).count("\n") > written + 3, within=30, what="the copy to go on")
        (run.sandbox / "stop").touch()
        termination = await asyncio.wait_for(running, 60)
    finally:
        proxy.stop()
    assert proxy.interruptions == 2
    assert termination.state == "TASK_FINISHED", termination.message
    assert counted_lines(sandbox_text(run)) > written


async def test_a_real_dockerd_restart_with_live_restore_keeps_the_container_and_every_line(tmp_path, private_dockerd):
    options = AgentOptions(work_dir=str(tmp_path), docker_socket=str(private_dockerd.socket))
    run = make_run(tmp_path, docker_task(ROOTFS_IMAGE, COUNTING_COMMAND), options)
    running = asyncio.create_task(DockerContainerizer(options).run(run))
    await eventually(lambda: "line 5\n" in sandbox_text(run), within=30, what="the first lines")
    with private_dockerd.api() as api:
        started_at = api.inspect_container(f"mesos-{run.container_id}")["State"]["StartedAt"]

    await asyncio.to_thread(private_dockerd.restart)

    with private_dockerd.api() as api:
        state = api.inspect_container(f"mesos-{run.container_id}")["State"]
    assert state["Running"] and state["StartedAt"] == started_at, "the container did not survive the restart"
    written = sandbox_text(run).count("\n")
    await eventually(
        lambda: sandbox_text(run).count("\n") > written + 3, within=30, what="the copy to go on after the restart"
    )
    (run.sandbox / "stop").touch()
    termination = await asyncio.wait_for(running, 60)
    assert termination.state == "TASK_FINISHED", termination.message
    assert counted_lines(sandbox_text(run)) > written
    assert [event["state"] for event in events(run)] == ["TASK_RUNNING"]


async def test_without_a_docker_socket_a_launch_fails_at_once_naming_the_socket(tmp_path, rootfs_image):
    socket_path = tmp_path / "no-dockerd.sock"
    options = AgentOptions(work_dir=str(tmp_path), docker_socket=str(socket_path))
    run = make_run(tmp_path, docker_task(rootfs_image, "true"), options)
    started = time.monotonic()
    termination = await asyncio.wait_for(DockerContainerizer(options).run(run), 10)
    assert time.monotonic() - started < 5, "no socket means no dockerd: nothing to wait for"
    assert termination.state == "TASK_FAILED"
    assert termination.reason == "REASON_CONTAINER_LAUNCH_FAILED"
    assert f"dockerd is not running: its socket {socket_path} does not exist" in termination.message


def stale_socket(path) -> None:
    """A socket file nobody listens on: what dockerd's socket looks like while dockerd (re)starts."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as orphan:
        orphan.bind(str(path))


async def test_a_launch_waits_for_a_dockerd_whose_socket_exists_but_does_not_answer_yet(tmp_path, rootfs_image):
    socket_path = tmp_path / "docker.sock"
    stale_socket(socket_path)
    options = AgentOptions(work_dir=str(tmp_path), docker_socket=str(socket_path))
    run = make_run(tmp_path, docker_task(rootfs_image, "echo launched"), options)
    running = asyncio.create_task(DockerContainerizer(options).run(run))
    proxy = DockerSocketProxy(socket_path)
    try:
        await asyncio.sleep(1.5)
        assert not running.done(), f"gave up on a dockerd that is starting: {running.result()}"
        proxy.start()  # dockerd answers now
        termination = await asyncio.wait_for(running, 30)
    finally:
        proxy.stop()
    assert termination.state == "TASK_FINISHED", termination.message
    assert sandbox_text(run) == "launched\n"


async def test_a_new_executor_of_a_running_task_waits_for_the_socket_and_never_starts_a_second_container(
    tmp_path, rootfs_image, docker_api
):
    """An earlier executor reported TASK_RUNNING: its container may exist, so a missing socket is waited for
    (dockerd may be restarting); a container that is gone by then is reported, never started again."""
    socket_path = tmp_path / "docker.sock"
    options = AgentOptions(work_dir=str(tmp_path), docker_socket=str(socket_path))
    run = make_run(tmp_path, docker_task(rootfs_image, "echo launched"), options)
    run.report("TASK_RUNNING", message="reported by an executor that died since")
    running = asyncio.create_task(DockerContainerizer(options).run(run))
    proxy = DockerSocketProxy(socket_path)
    try:
        await asyncio.sleep(1.5)
        assert not running.done(), f"gave up on a dockerd that may be restarting: {running.result()}"
        proxy.start()
        termination = await asyncio.wait_for(running, 30)
    finally:
        proxy.stop()
    assert termination.state == "TASK_FAILED"
    assert "Container disappeared" in termination.message
    assert docker_api.containers(all=True, filters={"name": f"mesos-{run.container_id}"}) == []
    assert sandbox_text(run) == ""
