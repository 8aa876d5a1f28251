"""High availability end to end: two Marathons and two masters on real ZooKeeper, one agent.

Kill the Marathon leader and the leading master in the middle of a rolling upgrade: the deployment
completes, the instance count converges, and the agent never runs more tasks than
(1 + maximumOverCapacity) x instances nor fewer running ones than minimumHealthCapacity x instances.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.request

import pytest
from marathon_cluster import SERVE

from harness.http import http
from harness.waiting import wait_for

pytestmark = pytest.mark.integration

FAST_FAILOVER = ("--zk_session_timeout=3000",)


def agent_tasks(agent, prefix: str) -> list[dict]:
    with urllib.request.urlopen(agent.url("/state"), timeout=2) as response:
        state = json.load(response)
    return [
        task
        for framework in state["frameworks"]
        for executor in framework["executors"]
        for task in executor["tasks"]
        if task["id"].startswith(prefix)
    ]


class AgentWatcher(threading.Thread):
    """Samples the agent's tasks of one app: the most that were alive and the fewest that were running."""

    def __init__(self, agent, prefix: str) -> None:
        super().__init__(daemon=True)
        self.agent, self.prefix = agent, prefix
        self.most_alive, self.fewest_running = 0, 10**6
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                tasks = agent_tasks(self.agent, self.prefix)
            except OSError:
                continue
            alive = [
                t for t in tasks if t["state"] in ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING")
            ]
            self.most_alive = max(self.most_alive, len(alive))
            self.fewest_running = min(self.fewest_running, sum(1 for t in tasks if t["state"] == "TASK_RUNNING"))
            time.sleep(0.1)


def leader_of(marathons) -> object:
    def find():
        for candidate in marathons:
            if candidate.process.poll() is None:
                status, _, body = http("GET", candidate.url("/v2/info"))
                if status == 200 and body.get("elected"):
                    return candidate
        return None

    return wait_for(find, 40, what="an elected Marathon")


def test_non_leader_proxies_and_redirects_events(cluster):
    cluster.start_agent("127.0.0.1")
    first = cluster.start_marathon(*FAST_FAILOVER)
    second = cluster.start_marathon(*FAST_FAILOVER)
    assert leader_of([first, second]) is first
    status, headers, body = http("POST", second.url("/v2/apps"), {"id": "proxied", "cmd": "sleep 600", "cpus": 0.1,
                                                                   "mem": 16})  # fmt: skip
    assert status == 201, body
    assert headers["X-Marathon-Via"].endswith(second.url()[len("http://") :])
    assert headers["X-Marathon-Leader"] == first.url()
    assert http("GET", first.url("/v2/apps/proxied"))[0] == 200
    assert http("GET", second.url("/v2/leader"))[2] == {"leader": first.url()[len("http://") :]}
    request = urllib.request.Request(second.url("/v2/events"))

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *arguments, **keywords):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as caught:
        opener.open(request, timeout=5)
    assert caught.value.code == 302 and caught.value.headers["Location"] == first.url("/v2/events")
    # Abdication: the other instance takes over, the app is still there, and the old leader's event streams end
    # (so that clients reconnect and are sent to the new leader).
    stream = urllib.request.urlopen(first.url("/v2/events"), timeout=20)
    assert stream.readline().startswith(b"event: event_stream_attached")
    assert http("DELETE", second.url("/v2/leader"))[2] == {"message": "Leadership abdicated"}
    ended = threading.Event()
    threading.Thread(target=lambda: (stream.read(), ended.set()), daemon=True).start()
    assert ended.wait(15), "the event stream of the old leader ends"
    assert leader_of([second]) is second
    # A new leader answers 503 while it loads the state from ZooKeeper; then it serves the app.
    wait_for(lambda: http("GET", second.url("/v2/apps/proxied"))[0] == 200, 30, what="the app on the new leader")


def test_killing_both_leaders_during_a_rolling_upgrade(cluster):
    standby_master = cluster.start_master()
    agent = cluster.start_agent("127.0.0.1", resources="cpus:4;mem:4096;disk:4096")
    first = cluster.start_marathon(*FAST_FAILOVER)
    second = cluster.start_marathon(*FAST_FAILOVER)
    app = {
        "id": "rolling",
        "cmd": SERVE,
        "cpus": 0.1,
        "mem": 32,
        "instances": 4,
        "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.5},
        "healthChecks": [{"protocol": "TCP", "intervalSeconds": 1, "timeoutSeconds": 1, "gracePeriodSeconds": 30}],
    }
    assert http("POST", second.url("/v2/apps"), app)[0] == 201

    def healthy_count(service) -> int:
        status, _, body = http("GET", service.url("/v2/apps/rolling"))
        return body["app"]["tasksHealthy"] if status == 200 else -1

    wait_for(lambda: healthy_count(second) == 4, 60, what="four healthy tasks")
    wait_for(lambda: http("GET", second.url("/v2/deployments"))[2] == [], 30, what="the first deployment")
    framework_id = http("GET", first.url("/v2/info"))[2]["frameworkId"]
    old_ids = {t["id"] for t in agent_tasks(agent, "rolling.")}

    watcher = AgentWatcher(agent, "rolling.")
    watcher.start()
    status, _, body = http("PUT", second.url("/v2/apps/rolling"), {"cmd": SERVE + " # v2"})
    assert status == 200, body
    time.sleep(1.0)  # the upgrade is under way
    leading_master = next(
        m for m in cluster.masters if http("GET", m.url("/master/state"))[2].get("leader", "").endswith(str(m.port))
    )
    first.kill(signal.SIGKILL)
    leading_master.kill(signal.SIGKILL)
    survivor = leader_of([second])
    assert survivor is second
    wait_for(lambda: http("GET", second.url("/v2/deployments"))[2] == [], 120, what="the upgrade to complete")
    wait_for(lambda: healthy_count(second) == 4, 60, what="four healthy tasks after the failover")
    watcher.stopped.set()
    watcher.join(5)

    assert http("GET", second.url("/v2/info"))[2]["frameworkId"] == framework_id, "same framework after failover"
    running = [t for t in agent_tasks(agent, "rolling.") if t["state"] == "TASK_RUNNING"]
    assert len(running) == 4 and not old_ids & {t["id"] for t in running}
    marathon_view = {t["id"] for t in http("GET", second.url("/v2/apps/rolling/tasks"))[2]["tasks"]}
    assert marathon_view == {t["id"] for t in running}, "Marathon knows exactly the tasks that run"
    assert watcher.most_alive <= 6, f"at most 4 x 1.5 tasks alive, saw {watcher.most_alive}"
    assert watcher.fewest_running >= 2, f"at least 4 x 0.5 running, saw {watcher.fewest_running}"
    assert standby_master.process.poll() is None
