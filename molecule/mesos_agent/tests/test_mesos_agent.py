"""The mesos_agent role: /etc/mesos/zk and /etc/mesos-slave/*, the mesos-slave unit (alias
mesos-agent, KillMode=process), an agent registered with the master that runs a command task and a
Docker task, and a new registration after its attributes changed (side_effect.yml)."""

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from testinfra_helpers import node_address, wait_for_json


def test_containerizers_file_holds_exactly_docker_mesos(host):
    assert host.file("/etc/mesos-slave/containerizers").content_string == "docker,mesos\n"


def test_zk_file_names_the_zookeeper_of_the_masters(host):
    assert host.file("/etc/mesos/zk").content_string == "zk://molecule-mesos-agent:2181/mesos\n"


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("resources", "cpus:2;mem:1024"),
        ("attributes", "rack:b;zone:2"),
        ("work_dir", "/var/lib/mesos/agent"),
        ("hostname", "molecule-mesos-agent"),
    ],
)
def test_each_flag_has_its_file(host, flag, value):
    assert host.file(f"/etc/mesos-slave/{flag}").content_string == f"{value}\n"


def test_ip_flag_is_the_host_address(host):
    assert host.file("/etc/mesos-slave/ip").content_string == f"{node_address(host)}\n"


def test_unit_kills_only_the_agent_process_and_restarts_on_any_exit(host):
    assert host.check_output("systemctl show -P KillMode mesos-slave") == "process"
    assert host.check_output("systemctl show -P Restart mesos-slave") == "always"
    assert host.check_output("systemctl show -P StartLimitIntervalUSec mesos-slave") == "0"


def test_unit_is_running_and_enabled_under_both_names(host):
    assert host.service("mesos-slave").is_enabled
    assert host.service("mesos-slave").is_running
    status = host.run("systemctl status mesos-agent")
    assert status.rc == 0, status.stdout + status.stderr
    assert "mesos-slave.service" in status.stdout


def test_agent_registered_anew_after_its_attributes_changed(host):
    before = host.file("/root/agent-id-before-attribute-change").content_string.strip()
    state = wait_for_json(host, f"http://{node_address(host)}:5051/state", lambda s: s.get("registered"))
    assert state["id"] and state["id"] != before
    slaves = wait_for_json(
        host,
        f"http://{node_address(host)}:5050/master/slaves",
        lambda s: any(agent["id"] == state["id"] and agent["active"] for agent in s["slaves"]),
    )
    current = next(agent for agent in slaves["slaves"] if agent["id"] == state["id"])
    assert current["attributes"] == {"rack": "b", "zone": 2.0}
    assert current["hostname"] == "molecule-mesos-agent"
    # The old identity is no longer an active agent.
    assert not any(agent["id"] == before and agent["active"] for agent in slaves["slaves"])


def test_command_task_finishes(host):
    result = host.run(
        "mesos-execute --master=$(mesos-resolve $(cat /etc/mesos/zk)) --name=molecule-command "
        "--resources='cpus:0.1;mem:32' --command='sleep 1'"
    )
    assert result.rc == 0, result.stdout + result.stderr
    assert "TASK_FINISHED" in result.stdout


def test_docker_task_finishes_with_the_preloaded_busybox_image(host):
    result = host.run(
        "mesos-execute --master=$(mesos-resolve $(cat /etc/mesos/zk)) --name=molecule-docker "
        "--resources='cpus:0.1;mem:32' --docker_image=mesolite/busybox:latest --command='sleep 1'"
    )
    assert result.rc == 0, result.stdout + result.stderr
    assert "TASK_FINISHED" in result.stdout


def test_a_running_task_survives_an_agent_restart(host):
    host.run("rm -f /tmp/survivor-started")
    launched = host.run(
        "nohup mesos-execute --master=$(mesos-resolve $(cat /etc/mesos/zk)) --name=molecule-survivor "
        "--resources='cpus:0.1;mem:32' --checkpoint "
        "--command='touch /tmp/survivor-started; sleep 20' > /tmp/survivor.log 2>&1 &"
    )
    assert launched.rc == 0
    for _ in range(30):
        if host.file("/tmp/survivor-started").exists:
            break
        time.sleep(1)
    else:
        pytest.fail("the task did not start: " + host.file("/tmp/survivor.log").content_string)
    task_pid = host.check_output("pgrep -f 'slee[p] 20'").split()[0]
    assert host.run("systemctl restart mesos-slave").rc == 0
    assert host.run(f"kill -0 {task_pid}").rc == 0, "the task died with the agent"
    for _ in range(40):
        if "TASK_FINISHED" in host.file("/tmp/survivor.log").content_string:
            return
        time.sleep(1)
    pytest.fail("the task did not finish after the restart: " + host.file("/tmp/survivor.log").content_string)
