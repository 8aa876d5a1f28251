"""Mesos-style health checks run by the executor of a command task on a real agent (fake master)."""

# ruff: noqa: F811 - pytest fixtures imported from agent_testing and agent_fake_master are redefined as parameters

from __future__ import annotations

import socket

import pytest
from agent_fake_master import FakeMaster, master  # noqa: F401 - a fixture
from agent_testing import home, start_agent  # noqa: F401 - a fixture

from harness.waiting import wait_for

pytestmark = pytest.mark.integration

REASON = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"


def command_check(value: str, **settings) -> dict:
    return {
        "type": "COMMAND",
        "command": {"value": value},
        "delay_seconds": 0,
        "interval_seconds": 1,
        "timeout_seconds": 5,
        **settings,
    }


def health_updates(master: FakeMaster, task_id: str) -> list[dict]:
    return [u["status"] for u in master.updates(task_id) if "healthy" in u["status"]]


def test_a_passing_command_check_reports_healthy_once(launcher, home, master):
    start_agent(launcher, home, master)
    master.run_task("fine", {"value": "sleep 600"}, health_check=command_check('test -n "$MESOS_TASK_ID"'))
    healthy = wait_for(lambda: health_updates(master, "fine"), 20, what="a health update")[0]
    assert healthy["state"] == "TASK_RUNNING"
    assert healthy["healthy"] is True
    assert healthy["reason"] == REASON
    assert healthy["container_status"]["network_infos"][0]["ip_addresses"][0]["ip_address"] == "127.0.0.1"
    master.kill_task("fine", 0)
    master.wait_for_state("fine", "TASK_KILLED")
    assert [s["healthy"] for s in health_updates(master, "fine")] == [True]  # reported when it changes only


def test_a_failing_command_check_reports_unhealthy_and_kills_the_task(launcher, home, master):
    start_agent(launcher, home, master)
    check = command_check("false", consecutive_failures=2, grace_period_seconds=0)
    master.run_task("sick", {"value": "sleep 600"}, health_check=check)
    killed = master.wait_for_state("sick", "TASK_KILLED", timeout=30)["status"]
    assert "health check failed 2 times" in killed["message"]
    assert killed["reason"] == REASON
    assert killed["healthy"] is False
    statuses = [u["status"] for u in master.updates("sick")]
    unhealthy = [s for s in statuses if s["state"] == "TASK_RUNNING" and s.get("healthy") is False]
    assert len(unhealthy) == 1
    assert unhealthy[0]["reason"] == REASON
    assert not any(s.get("healthy") is True for s in statuses)


def test_failures_within_the_grace_period_are_ignored(launcher, home, master):
    start_agent(launcher, home, master)
    # Fails for its first two seconds, then passes: within a 30 s grace period nothing is reported until then.
    check = command_check("test -e ready || { touch ready; false; }", consecutive_failures=1, grace_period_seconds=30)
    master.run_task("slow", {"value": "sleep 600"}, health_check=check)
    wait_for(lambda: health_updates(master, "slow"), 20, what="a health update")
    assert [s["healthy"] for s in health_updates(master, "slow")] == [True]
    master.kill_task("slow", 0)
    master.wait_for_state("slow", "TASK_KILLED")


def test_http_and_tcp_checks(launcher, home, master):
    start_agent(launcher, home, master)

    with socket.socket() as probe, socket.socket() as other:
        probe.bind(("127.0.0.1", 0))
        other.bind(("127.0.0.1", 0))
        port, closed_port = probe.getsockname()[1], other.getsockname()[1]
    server = f"exec python3 -m http.server --bind 127.0.0.1 {port}"
    master.run_task(
        "web",
        {"value": server},
        health_check={
            "type": "HTTP",
            "http": {"port": port, "path": "/"},
            "delay_seconds": 0,
            "interval_seconds": 1,
            "grace_period_seconds": 20,
        },
    )
    master.run_task(
        "nothing",
        {"value": "sleep 600"},
        health_check={
            "type": "TCP",
            "tcp": {"port": closed_port},
            "delay_seconds": 0,
            "interval_seconds": 1,
            "grace_period_seconds": 0,
            "consecutive_failures": 1,
        },
    )
    assert wait_for(lambda: health_updates(master, "web"), 30, what="web healthy")[0]["healthy"] is True
    killed = master.wait_for_state("nothing", "TASK_KILLED", timeout=30)["status"]
    assert "TCP health check failed" in killed["message"]
    master.kill_task("web", 0)
    master.wait_for_state("web", "TASK_KILLED")
