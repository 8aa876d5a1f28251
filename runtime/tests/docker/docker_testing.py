"""Helpers for the Docker tests: the real dockerd, the local images, runs of the containerizer, a socket
proxy that plays a dockerd restart.

Every container a test makes carries the label `org.mesolite.test=<this session>` and is removed at the
end, whatever the test did; containers of anyone else are never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from harness.processes import free_port
from mesolite.agent.containerizers.base import AgentOptions, ExecutorRun

DOCKER_SOCKET = "/var/run/docker.sock"
REPOSITORY = Path(__file__).resolve().parents[3]
ROOTFS_IMAGE = "mesolite/debian-rootfs:bookworm"  # made by images/base/build.sh (make images)
NGINX_IMAGE = "nginx:latest"  # made by images/nginx/build.sh
TEST_LABEL = "org.mesolite.test"
TEST_SESSION = uuid.uuid4().hex[:12]

requires_docker = pytest.mark.skipif(
    not os.path.exists(DOCKER_SOCKET), reason=f"no Docker daemon socket at {DOCKER_SOCKET}"
)
# The marks of every module that runs containers (`pytestmark = DOCKER_INTEGRATION`); the module imports the
# `cleanup_containers` fixture, which removes what the session labelled.
DOCKER_INTEGRATION = [
    pytest.mark.docker,
    pytest.mark.integration,
    requires_docker,
    pytest.mark.usefixtures("cleanup_containers"),
]


def remove_session_containers(api: docker.APIClient) -> None:
    """Remove every container this session labelled (waiting out removals already under way)."""
    deadline = time.monotonic() + 30
    while containers := api.containers(all=True, filters={"label": f"{TEST_LABEL}={TEST_SESSION}"}):
        for container in containers:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):  # 409: being removed
                api.remove_container(container["Id"], force=True, v=True)
        if time.monotonic() > deadline:
            pytest.fail(f"could not remove test containers: {[c['Names'] for c in containers]}")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def docker_api() -> Iterator[docker.APIClient]:
    """A docker API client; at the end of the session, every container this session labelled is removed."""
    api = docker.APIClient(base_url=f"unix://{DOCKER_SOCKET}", version="auto")
    yield api
    remove_session_containers(api)
    api.close()


@pytest.fixture
def cleanup_containers(docker_api) -> Iterator[None]:
    """Remove this session's containers after each test too, so that a failed test leaves nothing running."""
    yield
    remove_session_containers(docker_api)


def _require_image(api: docker.APIClient, image: str, build_script: str | None = None) -> str:
    if build_script is not None:
        result = subprocess.run([REPOSITORY / build_script], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            pytest.fail(f"{build_script} failed (make images builds what it needs):\n{result.stdout}{result.stderr}")
    try:
        api.inspect_image(image)
    except docker.errors.ImageNotFound:
        pytest.fail(f"image {image} is missing: run `make images` (images/base/build.sh) first")
    return image


@pytest.fixture(scope="session")
def rootfs_image(docker_api) -> str:
    """A plain Debian image with a shell: quick to start, enough for commands."""
    return _require_image(docker_api, ROOTFS_IMAGE)


@pytest.fixture(scope="session")
def nginx_image(docker_api, rootfs_image) -> str:
    """nginx:latest from Debian's package; built here when missing or out of date (a few seconds)."""
    return _require_image(docker_api, NGINX_IMAGE, "images/nginx/build.sh")


def scalar(name: str, value: float) -> dict:
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}}


def port_range(begin: int, end: int) -> dict:
    return {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": begin, "end": end}]}}


def docker_task(
    image: str,
    command: str | None = None,
    *,
    shell: bool = True,
    arguments: list[str] | None = None,
    network: str = "HOST",
    port_mappings: list[dict] | None = None,
    ports: tuple[int, int] | None = None,
    privileged: bool = False,
    parameters: list[dict] | None = None,
    task_id: str | None = None,
) -> dict:
    """A v1 TaskInfo for a Docker task, labelled so that the session's cleanup finds its container."""
    resources = [scalar("cpus", 0.1), scalar("mem", 64)]
    if ports is not None:
        resources.append(port_range(*ports))
    docker_info: dict = {"image": image, "network": network}
    if port_mappings:
        docker_info["port_mappings"] = port_mappings
    if privileged:
        docker_info["privileged"] = True
    if parameters:
        docker_info["parameters"] = parameters
    command_info: dict = {"shell": shell}
    if command is not None:
        command_info["value"] = command
    if arguments is not None:
        command_info["arguments"] = arguments
    task_id = task_id or f"docker-test-{uuid.uuid4().hex[:8]}"
    return {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": {"value": "test-agent"},
        "resources": resources,
        "command": command_info,
        "container": {"type": "DOCKER", "docker": docker_info},
        "labels": {"labels": [{"key": TEST_LABEL, "value": TEST_SESSION}]},
    }


# A task that writes numbered lines until the test creates `stop` in its sandbox: it lasts exactly as long as
# the disturbance a test puts it through, and its output shows any line lost or copied twice.
COUNTING_COMMAND = 'i=0; until [ -e "$MESOS_SANDBOX/stop" ]; do i=$((i+1)); echo line $i; sleep 0.1; done'


def counted_lines(output: str) -> int:
    """How many lines COUNTING_COMMAND wrote, failing the test unless each came exactly once and in order."""
    lines = output.splitlines()
    assert lines == [f"line {i}" for i in range(1, len(lines) + 1)], "a line was lost or copied twice"
    return len(lines)


def make_run(
    work_dir: Path, task: dict, options: AgentOptions | None = None, container_id: str | None = None
) -> ExecutorRun:
    """An ExecutorRun laid out as the agent lays it out (meta run dir, sandbox), with task.info written."""
    container_id = container_id or str(uuid.uuid4())
    framework = {"id": {"value": "docker-test-framework"}, "name": "docker-tests", "user": "root"}
    executor_id = task["task_id"]["value"]
    relative = Path("frameworks", framework["id"]["value"], "executors", executor_id, "runs", container_id)
    run_dir = work_dir / "meta" / "slaves" / "test-agent" / relative
    sandbox = work_dir / "slaves" / "test-agent" / relative
    run_dir.mkdir(parents=True)
    sandbox.mkdir(parents=True)
    options = options or AgentOptions(work_dir=str(work_dir), containerizers=("docker", "mesos"))
    (run_dir / "task.info").write_text(
        json.dumps(
            {
                "task": task,
                "framework": framework,
                "containerizer": "docker",
                "sandbox": str(sandbox),
                "agent_id": "test-agent",
                "agent_options": options.to_json(),
            }
        )
    )
    return ExecutorRun(
        run_dir=run_dir,
        task=task,
        framework=framework,
        containerizer="docker",
        sandbox=sandbox,
        agent_id="test-agent",
        options=options,
    )


def events(run: ExecutorRun) -> list[dict]:
    if not run.events_path.exists():
        return []
    return [json.loads(line) for line in run.events_path.read_text().splitlines() if line.strip()]


def free_port_range(size: int = 1) -> tuple[int, int]:
    """`size` consecutive ports nothing listens on (probed, so a container can bind them)."""
    for _ in range(50):
        begin = free_port()
        if begin + size > 65535:
            continue
        if all(port_is_free(port) for port in range(begin, begin + size)):
            return begin, begin + size - 1
    pytest.fail(f"found no {size} consecutive free ports")


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


class DockerSocketProxy:
    """A unix socket that forwards to dockerd's, and can vanish for a while the way dockerd's socket does
    when dockerd restarts: every open connection is cut and new ones are refused until it is back.
    (Restarting the machine's real dockerd would disturb everything else running on it.)"""

    def __init__(self, path: Path, target: str = DOCKER_SOCKET):
        self.path = path
        self.target = target
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.interruptions = 0

    def start(self) -> DockerSocketProxy:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        listener.bind(str(self.path))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by interrupt() or stop()
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            with self._lock:
                self._connections += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, destination: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                destination.sendall(data)
        with contextlib.suppress(OSError):
            destination.shutdown(socket.SHUT_WR)

    def _close_everything(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def interrupt(self, seconds: float) -> None:
        """dockerd "restarts": connections cut, socket gone for `seconds`, then back."""
        self._close_everything()
        self.interruptions += 1
        time.sleep(seconds)
        self.start()

    def stop(self) -> None:
        self._close_everything()


class PrivateDockerd:
    """A second dockerd of our own, with live-restore, that a test may restart for real without disturbing
    the machine's dockerd: its own data root, exec root, socket and containerd, no iptables, and its own
    network namespace — `--bridge=none` makes dockerd delete the interface `docker0`, which in the machine's
    namespace belongs to the machine's dockerd."""

    def __init__(self, root: Path):
        self.root = root
        self.socket = root / "docker.sock"
        self.process: subprocess.Popen | None = None
        self.netns = f"mesolite-dockerd-{uuid.uuid4().hex[:8]}"
        subprocess.run(["ip", "netns", "add", self.netns], check=True)

    def start(self) -> None:
        command = [
            "nsenter",
            f"--net=/run/netns/{self.netns}",
            "dockerd",
            f"--data-root={self.root / 'data'}",
            f"--exec-root={self.root / 'exec'}",
            f"--pidfile={self.root / 'dockerd.pid'}",
            f"--host=unix://{self.socket}",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--live-restore",
            "--storage-driver=overlay2",
        ]
        log = (self.root / "dockerd.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the private dockerd exited:\n{self.log()[-3000:]}")
            with contextlib.suppress(docker.errors.DockerException), self.api() as api:
                api.ping()
                return
            time.sleep(0.2)
        pytest.fail(f"the private dockerd did not answer within 60s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def api(self) -> docker.APIClient:
        return docker.APIClient(base_url=f"unix://{self.socket}", version="auto", timeout=30)

    def log(self) -> str:
        return (self.root / "dockerd.log").read_text(errors="replace")

    def remove(self) -> None:
        """Remove its containers, stop it, and unmount and delete everything it left."""
        with contextlib.suppress(docker.errors.DockerException), self.api() as api:
            for container in api.containers(all=True):
                api.remove_container(container["Id"], force=True, v=True)
        self.stop()
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        for mount_point in sorted((m for m in mounts if m.startswith(str(self.root))), reverse=True):
            subprocess.run(["umount", "-l", mount_point], check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
        subprocess.run(["ip", "netns", "delete", self.netns], check=False, capture_output=True)


def docker0_index() -> str | None:
    path = Path("/sys/class/net/docker0/ifindex")
    return path.read_text().strip() if path.exists() else None


@pytest.fixture(scope="module")
def private_dockerd(docker_api, rootfs_image, tmp_path_factory) -> Iterator[PrivateDockerd]:
    """A private dockerd holding a copy of the rootfs image."""
    if shutil.which("dockerd") is None:
        pytest.fail("dockerd is not installed (make deps installs it)")
    bridge_before = docker0_index()
    daemon = PrivateDockerd(tmp_path_factory.mktemp("dockerd"))
    try:
        daemon.start()
        with daemon.api() as api:
            api.load_image(docker_api.get_image(rootfs_image, chunk_size=1 << 20))  # streamed, not held in memory
        yield daemon
    finally:
        daemon.remove()
    assert docker0_index() == bridge_before, "the private dockerd touched the machine's docker0"


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
