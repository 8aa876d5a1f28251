"""The master warns when it advertises a loopback IP while ZooKeeper is on another host.

Without --ip the master advertises the address its hostname resolves to, as Mesos does; on Debian that is
127.0.1.1, which agents on other hosts find in ZooKeeper and cannot reach.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mesolite.master.service import advertised_ip_source, loopback_warning
from mesolite.zookeeper.url import parse_zookeeper_url

REMOTE = "zk://192.168.56.12:2181,192.168.56.12:2182,192.168.56.12:2183/mesos"


@pytest.mark.parametrize(
    ("ip", "zookeeper"),
    [
        ("127.0.1.1", REMOTE),
        ("127.0.0.1", "zk://localhost:2181,192.168.56.12:2181/mesos"),  # one server elsewhere is enough
    ],
)
def test_warns_about_a_loopback_ip_with_a_remote_zookeeper(ip, zookeeper):
    warning = loopback_warning(
        ip, "no --ip given: the address of this host's name 'node1'", parse_zookeeper_url(zookeeper)
    )
    assert warning is not None
    assert f"advertising {ip} (no --ip given: the address of this host's name 'node1'), a loopback address" in warning
    assert "Set --ip (or /etc/mesos-master/ip)" in warning


def test_a_zookeeper_name_that_does_not_resolve_counts_as_remote(monkeypatch):
    def unresolvable(name: str) -> str:
        raise OSError(f"cannot resolve {name}")  # no DNS query leaves this machine in tests

    monkeypatch.setattr("socket.gethostbyname", unresolvable)
    warning = loopback_warning(
        "127.0.0.1", "--ip", parse_zookeeper_url("zk://user:secret@zookeeper.example:2181/mesos")
    )
    assert warning is not None and "(zookeeper.example:2181)" in warning
    assert "secret" not in warning


@pytest.mark.parametrize(
    ("ip", "zookeeper"),
    [
        ("192.168.56.11", REMOTE),  # reachable
        ("127.0.1.1", "zk://127.0.0.1:2181,localhost:2182,[::1]:2183/mesos"),  # a one-host cluster
        ("127.0.1.1", None),  # standalone
    ],
)
def test_no_warning_when_everything_is_reachable(ip, zookeeper):
    assert loopback_warning(ip, "--ip", zookeeper and parse_zookeeper_url(zookeeper)) is None


def test_the_warning_names_where_the_ip_came_from():
    flags = SimpleNamespace(ip=None, advertise_ip=None)
    assert advertised_ip_source(flags).startswith("no --ip given: the address of this host's name '")
    assert advertised_ip_source(SimpleNamespace(ip="127.0.0.1", advertise_ip=None)) == "--ip"
    assert advertised_ip_source(SimpleNamespace(ip="0.0.0.0", advertise_ip="127.0.0.1")) == "--advertise_ip"
