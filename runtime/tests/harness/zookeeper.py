"""A real ZooKeeper server (Debian's `zookeeper` package) started as a plain Java process on a free port; every
test gets its own chroot path (`ZooKeeperServer.url`) so that tests never see each other's znodes."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.processes import free_port
from harness.waiting import wait_for

ZOOKEEPER_CLASSPATH = ":".join(
    ["/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-simple.jar", "/usr/share/java/slf4j-api.jar"]
)


def four_letter_word(port: int, word: str = "ruok") -> str:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
        connection.sendall(word.encode())
        return connection.recv(4096).decode(errors="replace")
    return ""


@dataclass
class ZooKeeperServer:
    """One standalone ZooKeeper server; `url(path)` gives a zk:// URL with a fresh chroot."""

    port: int
    process: subprocess.Popen
    directory: Path

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "/mesos") -> str:
        return f"zk://{self.hosts}/test-{uuid.uuid4().hex[:12]}{path}"


def start_zookeeper(directory: Path) -> ZooKeeperServer:
    if not Path("/usr/share/java/zookeeper.jar").exists():
        pytest.fail("ZooKeeper is not installed: `apt-get install zookeeper` (make deps does it)")
    port = free_port()
    data = directory / "data"
    data.mkdir(parents=True)
    config = directory / "zoo.cfg"
    config.write_text(
        f"tickTime=500\ndataDir={data}\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
        "admin.enableServer=false\n4lw.commands.whitelist=ruok,srvr,stat,mntr\nmaxClientCnxns=0\n"
        # Small session timeouts keep session-loss tests fast (min is 2 ticks).
        "minSessionTimeout=1000\nmaxSessionTimeout=30000\n"
    )
    log = (directory / "zookeeper.log").open("wb")
    process = subprocess.Popen(
        [
            "java",
            # ZooKeeper keeps its whole tree in memory, and the suite's tests (hundreds of chroots, values
            # of several megabytes) share this server: 256 MB ran out late in a full run.
            "-Xmx1g",
            "-cp",
            ZOOKEEPER_CLASSPATH,
            "org.apache.zookeeper.server.ZooKeeperServerMain",
            str(config),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = ZooKeeperServer(port=port, process=process, directory=directory)
    # `ruok` answers before the server takes requests; `srvr` reports a Mode only once it does.
    wait_for(lambda: "Mode:" in four_letter_word(port, "srvr"), timeout=30, what=f"ZooKeeper on port {port}")
    return server
