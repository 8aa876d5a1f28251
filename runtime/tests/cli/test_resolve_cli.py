"""mesos-resolve as a real process: the leader's ip:port from ZooKeeper, file:// and host:port; timeouts."""

import json
import time

import pytest
from cluster_testing import needs_services, run_cli, start_cluster
from kazoo.client import KazooClient

from mesolite.zookeeper.detector import ip_to_uint32
from mesolite.zookeeper.url import parse_zookeeper_url


def register_fake_leader(url: str, ip: str, port: int) -> None:
    """Write a master's json.info_ znode as Mesos does (only the znode: no master process behind it)."""
    parsed = parse_zookeeper_url(url)
    client = KazooClient(hosts=parsed.hosts)
    client.start(10)
    try:
        client.ensure_path(parsed.path)
        info = {"id": "m", "ip": ip_to_uint32(ip), "port": port, "pid": f"master@{ip}:{port}", "hostname": "h",
                "version": "1.11.0", "address": {"hostname": "h", "ip": ip, "port": port}}  # fmt: skip
        client.create(f"{parsed.path}/json.info_", json.dumps(info).encode(), sequence=True)
    finally:
        client.stop()
        client.close()


@pytest.mark.integration
def test_prints_the_leader_from_zookeeper(zookeeper):
    url = zookeeper.url()
    register_fake_leader(url, "192.168.56.11", 5050)
    result = run_cli("mesos-resolve", url)
    assert (result.returncode, result.stdout) == (0, "192.168.56.11:5050\n"), result.stderr


@pytest.mark.integration
def test_reads_the_url_from_a_file(zookeeper, tmp_path):
    url = zookeeper.url()
    register_fake_leader(url, "10.0.0.7", 5051)
    (tmp_path / "zk").write_text(url + "\n")
    result = run_cli("mesos-resolve", f"--master=file://{tmp_path / 'zk'}")
    assert (result.returncode, result.stdout) == (0, "10.0.0.7:5051\n"), result.stderr


def test_host_and_port_are_printed_resolved():
    result = run_cli("mesos-resolve", "localhost:5050")
    assert (result.returncode, result.stdout) == (0, "127.0.0.1:5050\n")


@pytest.mark.integration
def test_no_leader_times_out_with_a_message_and_non_zero_exit(zookeeper):
    url = zookeeper.url()
    started = time.monotonic()
    result = run_cli("mesos-resolve", "--timeout=1secs", url)
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"Failed to detect master from '{url}' within 1secs: no leading master found" in result.stderr
    assert time.monotonic() - started < 10


def test_unreachable_zookeeper_times_out_naming_it():
    result = run_cli("mesos-resolve", "--timeout=500ms", "zk://127.0.0.1:1/mesos")
    assert result.returncode == 1
    assert "could not connect to ZooKeeper at 127.0.0.1:1" in result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((), "missing MASTER"),
        (("zk://h:2181/mesos", "extra"), "expected one MASTER"),
        (("http//nonsense",), "invalid master"),
        (("--timeout=soon", "h:1"), "--timeout"),
        (("--bogus", "h:1"), "unknown flag --bogus"),
    ],
)
def test_usage_errors_exit_2_with_the_reason(arguments, message):
    result = run_cli("mesos-resolve", *arguments)
    assert result.returncode == 2
    assert message in result.stderr


@pytest.mark.integration
@needs_services
def test_resolves_a_real_master(launcher, zookeeper, tmp_path):
    cluster = start_cluster(launcher, zookeeper, tmp_path)
    result = run_cli("mesos-resolve", cluster.zk_url)
    assert (result.returncode, result.stdout) == (0, f"127.0.0.1:{cluster.master_port}\n"), result.stderr
