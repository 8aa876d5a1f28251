"""The mesos_dns role: config.json, the mesos-dns unit and its user, the HTTP API, and the cluster's names
answered through the host's own resolver (resolv.conf points at mesos-dns)."""

import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from testinfra_helpers import node_address, wait_for_json


def test_config_json(host):
    config_file = host.file("/etc/mesos-dns/config.json")
    assert (config_file.user, config_file.group, config_file.mode) == ("root", "mesos-dns", 0o640)
    config = json.loads(config_file.content_string)
    assert config["zk"] == "zk://molecule-mesos-dns:2181/mesos"
    assert (config["domain"], config["port"], config["httpport"], config["refreshSeconds"]) == ("mesos", 53, 8123, 1)
    assert config["externalon"] is False
    # resolv.conf names 127.0.0.1 once the client ran: that is mesos-dns itself, never an upstream.
    assert "127.0.0.1" not in config["resolvers"]


def test_service_runs_unprivileged(host):
    assert host.service("mesos-dns").is_enabled
    assert host.service("mesos-dns").is_running
    assert host.check_output("systemctl show -P User mesos-dns") == "mesos-dns"
    assert host.check_output("systemctl show -P Restart mesos-dns") == "always"


def test_http_api(host):
    version = wait_for_json(host, "http://127.0.0.1:8123/v1/version", lambda body: True)
    assert version["Service"] == "Mesos-DNS"
    wait_for_json(host, "http://127.0.0.1:8123/v1/hosts/leader.mesos", lambda body: body[0]["ip"] != "")


def test_resolv_conf_points_at_mesos_dns(host):
    resolv = host.file("/etc/resolv.conf").content_string
    assert "# BEGIN mesos-dns" in resolv and "nameserver 127.0.0.1" in resolv


def test_cluster_names_resolve_through_the_hosts_resolver(host):
    address = node_address(host)
    for name in ("leader.mesos", "master.mesos", "slave.mesos"):
        for _ in range(30):
            result = host.run(f"getent ahostsv4 {name}")
            if result.rc == 0:
                break
            time.sleep(1)
        assert result.rc == 0, f"{name} does not resolve"
        assert result.stdout.split()[0] == address


def test_a_task_gets_its_name(host):
    execute = host.run(
        "timeout 120 mesos-execute --master=$(cat /etc/mesos/zk) --name=dnsprobe "
        "--command='sleep 15' --resources='cpus:0.1;mem:32' > /tmp/dnsprobe.log 2>&1 &"
    )
    assert execute.rc == 0
    for _ in range(60):
        if host.run("getent ahostsv4 dnsprobe.mesos-executeinstance.mesos").rc == 0:
            return
        time.sleep(1)
    pytest.fail("dnsprobe.mesos-executeinstance.mesos never resolved: " + host.file("/tmp/dnsprobe.log").content_string)
