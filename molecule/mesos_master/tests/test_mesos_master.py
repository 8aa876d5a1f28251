"""The mesos_master role: /etc/mesos/zk and one file per flag, a hardened mesos-master unit, a
master that leads through ZooKeeper, and a restart (only) after a configuration change."""

import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from testinfra_helpers import node_address


def fetch(host, path, attempts=30):
    """GET a master endpoint from inside the node, retrying while the master starts or elects."""
    for _ in range(attempts):
        result = host.run(f"curl -sf http://{node_address(host)}:5050{path}")
        if result.rc == 0:
            return result.stdout
        time.sleep(1)
    pytest.fail(f"the master did not answer {path}")


def test_zk_file_names_the_zookeeper_of_the_masters(host):
    # The cluster role builds it from the instance's inventory address (here the container's name).
    assert host.file("/etc/mesos/zk").content_string == "zk://molecule-mesos-master:2181/mesos\n"


@pytest.mark.parametrize(
    ("flag", "value"),
    [("port", "5050"), ("hostname", "molecule-mesos-master")],
)
def test_each_flag_has_its_file(host, flag, value):
    assert host.file(f"/etc/mesos-master/{flag}").content_string == f"{value}\n"


@pytest.mark.parametrize("flag", ["quorum", "work_dir"])
def test_no_file_for_a_flag_the_runtime_ignores(host, flag):
    # The runtime accepts --quorum and --work_dir for compatibility with Mesos's command lines but reads neither.
    assert not host.file(f"/etc/mesos-master/{flag}").exists


def test_ip_flag_is_the_host_address(host):
    assert host.file("/etc/mesos-master/ip").content_string == f"{node_address(host)}\n"


def test_file_of_a_flag_no_longer_set_is_removed(host):
    assert not host.file("/etc/mesos-master/offer_timeout").exists


def test_unit_runs_the_runtime_hardened_and_restarts_on_any_exit(host):
    show = dict(
        line.split("=", 1)
        for line in host.check_output(
            "systemctl show -p ExecStart -p Restart -p StartLimitIntervalUSec"
            " -p LimitNOFILE -p NoNewPrivileges -p ProtectSystem mesos-master"
        ).splitlines()
    )
    assert "/usr/local/bin/mesolite" in show["ExecStart"] and "master" in show["ExecStart"]
    assert show["Restart"] == "always"
    assert show["StartLimitIntervalUSec"] == "0"
    assert int(show["LimitNOFILE"]) >= 1048576
    assert show["NoNewPrivileges"] == "yes"
    assert show["ProtectSystem"] == "strict"


def test_service_is_enabled_and_running(host):
    service = host.service("mesos-master")
    assert service.is_enabled
    assert service.is_running


def test_master_answers_health(host):
    assert host.run(f"curl -sf -o /dev/null http://{node_address(host)}:5050/health").rc == 0


def test_mesos_resolve_finds_this_master_through_zookeeper(host):
    result = host.run("mesos-resolve $(cat /etc/mesos/zk)")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == f"{node_address(host)}:5050"


def test_master_leads_with_the_changed_cluster_name(host):
    state = json.loads(fetch(host, "/master/state"))
    assert state["cluster"] == "molecule-renamed"
    assert state["hostname"] == "molecule-mesos-master"


def test_configuration_change_restarted_the_running_master(host):
    before = int(host.file("/root/master-started-before-rename").content_string.strip())
    now = int(host.check_output("systemctl show -P ActiveEnterTimestampMonotonic mesos-master"))
    assert now > before
