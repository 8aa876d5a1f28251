"""The reference pseudo-cluster: three ZooKeeper instances on one host, as on node2."""

import json
import time
import uuid

import pytest
from kazoo.client import KazooClient

testinfra_hosts = ["zk-pseudo"]

INSTANCES = {1: 2181, 2: 2182, 3: 2183}


def modes(host):
    """Mode of every instance, from the zk-status command the role installs."""
    status = json.loads(host.check_output("zk-status --json"))
    return {entry["client_port"]: entry["mode"] for entry in status["instances"]}


def wait_for_all_serving(host, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if host.run("zk-status").rc == 0:
            return
        time.sleep(1)
    raise AssertionError(host.run("zk-status").stdout)


@pytest.mark.parametrize("instance", sorted(INSTANCES))
def test_each_instance_runs_as_its_own_service(host, instance):
    service = host.service(f"zookeeper@{instance}")
    assert service.is_running
    assert service.is_enabled
    assert host.socket(f"tcp://0.0.0.0:{INSTANCES[instance]}").is_listening


@pytest.mark.parametrize("instance", sorted(INSTANCES))
def test_each_instance_has_the_reference_config_and_myid(host, instance):
    config = host.file(f"/etc/zookeeper/conf/zk{instance}.cfg").content_string.splitlines()
    for line in (
        "tickTime=2000",
        "initLimit=10",
        "syncLimit=5",
        f"dataDir=/data/zk{instance}",
        f"clientPort={INSTANCES[instance]}",
        "server.1=zk-pseudo:3181:4181",
        "server.2=zk-pseudo:3182:4182",
        "server.3=zk-pseudo:3183:4183",
        "admin.enableServer=false",
        "reconfigEnabled=false",
        "autopurge.snapRetainCount=3",
        "autopurge.purgeInterval=24",
        "4lw.commands.whitelist=srvr,ruok,stat,mntr,conf,isro",
    ):
        assert line in config
    assert not any(line.startswith("metricsProvider") for line in config)
    assert host.file(f"/data/zk{instance}/myid").content_string.strip() == str(instance)
    assert host.file(f"/data/zk{instance}").user == "zookeeper"


def test_exactly_one_leader_and_two_followers(host):
    assert sorted(modes(host).values()) == ["follower", "follower", "leader"]


def test_a_znode_written_through_2181_is_read_back_through_2183(host):
    address = host.interface("eth0").addresses[0]
    path, value = f"/mesolite-test/{uuid.uuid4()}", b"written through 2181"
    writer = KazooClient(hosts=f"{address}:2181", timeout=10)
    reader = KazooClient(hosts=f"{address}:2183", timeout=10)
    writer.start(timeout=15)
    reader.start(timeout=15)
    try:
        writer.create(path, value, makepath=True)
        reader.sync(path)
        assert reader.get(path)[0] == value
    finally:
        writer.stop()
        reader.stop()


def test_instances_run_unprivileged_and_hardened(host):
    properties = host.check_output(
        "systemctl show zookeeper@1 -p User -p NoNewPrivileges -p ProtectSystem -p PrivateTmp -p LimitNOFILE"
        " -p Restart -p StartLimitIntervalUSec"
    )
    assert set(properties.splitlines()) >= {
        "User=zookeeper",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "LimitNOFILE=65536",
        "Restart=always",
        "StartLimitIntervalUSec=0",
    }
    assert len(host.process.filter(comm="java", user="zookeeper")) == len(INSTANCES)
    assert host.process.filter(comm="java", user="root") == []


def test_ports_of_other_services_stay_free(host):
    # 8080 is Marathon's (AdminServer disabled); 7000 would clash between instances (metrics off).
    for port in (8080, 7000):
        assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening
        assert not host.socket(f"tcp://:::{port}").is_listening


def test_zookeeper_logs_reach_the_journal(host):
    journal = host.check_output("journalctl -u zookeeper@2 --no-pager -o cat")
    assert "Reading configuration from: /etc/zookeeper/conf/zk2.cfg" in journal
    assert "INFO" in journal


def test_zk_status_prints_config_port_and_mode(host):
    result = host.run("zk-status")
    assert result.rc == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["CONFIG", "CLIENT", "PORT", "MODE"]
    rows = [line.split() for line in lines[1:]]
    assert [row[:2] for row in rows] == [[f"/etc/zookeeper/conf/zk{i}.cfg", str(INSTANCES[i])] for i in (1, 2, 3)]
    assert sorted(row[2] for row in rows) == ["follower", "follower", "leader"]
    # The runbook's `zkServer.sh status zk1.cfg`: one instance by config name.
    single = host.run("zk-status zk1.cfg")
    assert single.rc == 0 and len(single.stdout.splitlines()) == 2


def test_zk_status_fails_when_an_instance_is_down(host):
    follower = next(port for port, mode in modes(host).items() if mode == "follower")
    instance = next(i for i, port in INSTANCES.items() if port == follower)
    host.check_output(f"systemctl stop zookeeper@{instance}")
    try:
        result = host.run("zk-status")
        assert result.rc == 1
        assert "down" in next(line for line in result.stdout.splitlines() if f"zk{instance}.cfg" in line)
    finally:
        host.check_output(f"systemctl start zookeeper@{instance}")
    wait_for_all_serving(host)
