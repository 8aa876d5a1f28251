"""The marathon role: one file per flag in /etc/marathon/conf, the marathon unit, and a Marathon
that registers with the master and runs an app posted with curl."""

import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from testinfra_helpers import wait_for_json

APP = {"id": "/molecule-sleeper", "cmd": "sleep 600", "cpus": 0.1, "mem": 32, "instances": 1}


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("master", "zk://molecule-marathon:2181/mesos"),
        ("zk", "zk://molecule-marathon:2181/marathon"),
        ("hostname", "molecule-marathon"),
        ("http_port", "8080"),
    ],
)
def test_each_flag_has_its_file(host, flag, value):
    assert host.file(f"/etc/marathon/conf/{flag}").content_string == f"{value}\n"


def test_service_is_enabled_and_running(host):
    assert host.service("marathon").is_enabled
    assert host.service("marathon").is_running
    assert host.check_output("systemctl show -P Restart marathon") == "always"
    assert host.check_output("systemctl show -P StartLimitIntervalUSec marathon") == "0"


def test_marathon_answers_ping(host):
    assert host.check_output("curl -sf http://127.0.0.1:8080/ping") == "pong"


def test_marathon_registered_with_the_master(host):
    master = host.check_output("mesos-resolve $(cat /etc/mesos/zk)")
    wait_for_json(
        host,
        f"http://{master}/master/frameworks",
        lambda state: any(framework["name"] == "marathon" for framework in state["frameworks"]),
    )


def test_posted_app_runs_and_is_deleted(host):
    posted = host.run(
        "curl -s -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:8080/v2/apps "
        f"-H 'Content-Type: application/json' -d '{json.dumps(APP)}'"
    )
    assert posted.stdout == "201", posted.stdout + posted.stderr
    try:
        tasks = wait_for_json(
            host,
            "http://127.0.0.1:8080/v2/apps/molecule-sleeper/tasks",
            lambda body: any(task.get("state") == "TASK_RUNNING" for task in body["tasks"]),
        )
        assert tasks["tasks"][0]["host"] == "molecule-marathon"
        assert host.run("pgrep -f 'slee[p] 600'").rc == 0
    finally:
        deleted = host.run(
            "curl -s -o /dev/null -w '%{http_code}' -X DELETE http://127.0.0.1:8080/v2/apps/molecule-sleeper"
        )
    assert deleted.stdout == "200"
    for _ in range(30):
        if host.run("pgrep -f 'slee[p] 600'").rc != 0:
            return
        time.sleep(1)
    pytest.fail("the app's task still runs after the app was deleted")
