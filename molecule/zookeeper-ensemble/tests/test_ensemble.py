"""A three-host ensemble, one instance per host: one leader, and a new one when it goes away."""

import json
import os
import subprocess
import sys
import time
import uuid

import pytest
import testinfra
from kazoo.client import KazooClient

NAMES = ["zk-ens-1", "zk-ens-2", "zk-ens-3"]
testinfra_hosts = NAMES


@pytest.fixture(scope="module")
def ensemble():
    """Every host of the ensemble by name (the tests below look at all of them at once)."""
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    return {name: testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory) for name in NAMES}


def mode_of(host):
    status = json.loads(host.run("zk-status --json").stdout)
    return status["instances"][0]["mode"]


def modes(ensemble):
    return {name: mode_of(host) for name, host in ensemble.items()}


def connect_string(ensemble, names=NAMES):
    return ",".join(f"{ensemble[name].interface('eth0').addresses[0]}:2181" for name in names)


def wait_for(condition, timeout, interval=0.2):
    """Poll condition() until it returns something true; return it and the seconds it took."""
    started = time.monotonic()
    while True:
        result = condition()
        if result or time.monotonic() - started > timeout:
            return result, time.monotonic() - started
        time.sleep(interval)


def test_each_host_runs_one_instance_with_its_inventory_position_as_id(host):
    position = NAMES.index(host.backend.get_hostname()) + 1
    assert host.service("zookeeper@" + str(position)).is_running
    assert host.file(f"/var/lib/zookeeper/zk{position}/myid").content_string.strip() == str(position)
    config = host.file(f"/etc/zookeeper/conf/zk{position}.cfg").content_string.splitlines()
    assert [line for line in config if line.startswith("server.")] == [
        f"server.{i}={name}:3181:4181" for i, name in enumerate(NAMES, start=1)
    ]


def test_exactly_one_leader(ensemble):
    assert sorted(modes(ensemble).values()) == ["follower", "follower", "leader"]


def test_a_new_leader_takes_over_within_10_s_and_the_old_one_rejoins_as_follower(ensemble):
    before = modes(ensemble)
    leader = next(name for name, mode in before.items() if mode == "leader")
    others = [name for name in NAMES if name != leader]
    leader_id = NAMES.index(leader) + 1
    path, value = f"/mesolite-failover/{uuid.uuid4()}", b"written before the leader stopped"

    client = KazooClient(hosts=connect_string(ensemble), timeout=10)
    client.start(timeout=15)
    try:
        client.create(path, value, makepath=True)
    finally:
        client.stop()

    ensemble[leader].check_output(f"systemctl stop zookeeper@{leader_id}")
    try:
        new_leader, seconds = wait_for(
            lambda: next((name for name in others if mode_of(ensemble[name]) == "leader"), None), timeout=10
        )
        print(f"new leader {new_leader} elected {seconds:.1f} s after {leader} stopped")
        assert new_leader, f"no new leader 10 s after stopping {leader}: {modes(ensemble)}"

        survivors = KazooClient(hosts=connect_string(ensemble, others), timeout=10)
        survivors.start(timeout=15)
        try:
            survivors.sync(path)
            assert survivors.get(path)[0] == value
            survivors.set(path, b"written while the old leader was down")
        finally:
            survivors.stop()
    finally:
        ensemble[leader].check_output(f"systemctl start zookeeper@{leader_id}")

    rejoined, seconds = wait_for(lambda: mode_of(ensemble[leader]) == "follower", timeout=60)
    assert rejoined, f"{leader} did not rejoin as follower: {modes(ensemble)}"
    print(f"{leader} rejoined as follower after {seconds:.1f} s")
    returned = KazooClient(hosts=connect_string(ensemble, [leader]), timeout=10)
    returned.start(timeout=15)
    try:
        returned.sync(path)
        assert returned.get(path)[0] == b"written while the old leader was down"
    finally:
        returned.stop()


def test_other_plays_learn_the_connect_string():
    # How playbooks/mesos.yml and marathon.yml learn it: a play on another group computes it from the
    # inventory alone (the cluster role), with no play on the zookeeper group first.
    playbook = os.path.join(os.path.dirname(__file__), "..", "connect_string.yml")
    # The inventory directory: it also holds the hosts molecule.yml adds (a mesos_masters host).
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    result = subprocess.run(
        ["ansible-playbook", "-i", inventory, playbook],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "zk://zk-ens-1:2181,zk-ens-2:2181,zk-ens-3:2181/mesos" in result.stdout
    assert "changed=0" in result.stdout and "changed=1" not in result.stdout
