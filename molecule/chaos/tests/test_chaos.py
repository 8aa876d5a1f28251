"""Chaos in the lab (issue 11): the cluster survives a network partition and its own rolling restarts.

The tests run in file order on one converged lab and build on each other: the reference nginx app runs
through Marathon (the module fixture), node1 is cut off from node2 and healed, ZooKeeper and then the
control plane are restarted with playbooks/rolling-restart.yml while nginx keeps serving, and the
reference runbook's checks pass at the end. What they measure is printed and written to
$MOLECULE_EPHEMERAL_DIRECTORY/chaos-report.json.

Commands run inside the nodes (docker exec). The only traffic from this machine to the cluster is the
loop of requests to nginx's host port, and only to the lab's node addresses (the scenario's subnet).
"""

import ipaddress
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import testinfra
import yaml
from testinfra.utils.ansible_runner import AnsibleRunner

SCENARIO = Path(__file__).resolve().parents[1]
PROJECT = SCENARIO.parents[1]
NGINX_APP = json.loads((PROJECT / "playbooks/files/nginx.json").read_text())
LAB_SUBNET = ipaddress.ip_network(yaml.safe_load((SCENARIO / "vars/network.yml").read_text())["molecule_lab_subnet"])

# Both the master and Marathon use ZooKeeper sessions of 10 s (their flags' defaults); the partition
# lasts well beyond that, so every session across it expires.
ZOOKEEPER_SESSION_TIMEOUT = 10.0
PARTITION_SECONDS = 2.5 * ZOOKEEPER_SESSION_TIMEOUT
# Generous bounds for a busy 2-core machine: the cluster recovers, or a test fails saying what is missing.
RECOVERY_SECONDS = 180
# The request loop: one request every REQUEST_INTERVAL seconds, never more than MAX_REQUESTS.
REQUEST_INTERVAL = 0.25
REQUEST_TIMEOUT = 2.0
MAX_REQUESTS = 8000

REPORT: dict = {}


def report(key, value):
    """Note a measurement: printed now, written with the others to chaos-report.json."""
    REPORT[key] = value
    print(f"chaos: {key} = {json.dumps(value)}")
    directory = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    if directory:
        Path(directory, "chaos-report.json").write_text(json.dumps(REPORT, indent=2) + "\n")


class Lab:
    """The converged lab: its nodes (by inventory name), their addresses and what runs where."""

    def __init__(self, inventory):
        self.inventory = inventory
        runner = AnsibleRunner(inventory)
        self.variables = {name: runner.get_variables(name) for name in runner.get_hosts("all")}
        self.groups = {
            group: runner.get_hosts(group) for group in ("zookeeper", "mesos_masters", "mesos_agents", "marathon")
        }
        self.master_node = self.groups["mesos_masters"][0]
        self.marathon_node = self.groups["marathon"][0]

    def host(self, name):
        return testinfra.get_host(f"docker://{self.variables[name]['ansible_host']}")

    def address(self, name):
        return self.variables[name]["mesolite_address"]

    def node_of(self, hostname):
        """The inventory host an agent's hostname (or address) names."""
        for name, variables in self.variables.items():
            if hostname in (name, variables.get("mesolite_address")):
                return name
        raise AssertionError(f"no lab node is called {hostname}")

    def get_json(self, node, url):
        """GET url from inside a node (following redirects); its JSON, or None while it does not answer."""
        result = self.host(node).run("curl -sfL --max-time 5 %s", url)
        return json.loads(result.stdout) if result.rc == 0 and result.stdout.strip() else None

    def master_state(self):
        """The leading master's /master/state, asked of the first master (it redirects to the leader)."""
        return self.get_json(self.master_node, f"http://{self.address(self.master_node)}:5050/master/state")

    def marathon(self, path):
        return self.get_json(self.marathon_node, f"http://127.0.0.1:8080{path}")

    def playbook(self, playbook, *arguments):
        """Run one of the project's playbooks against the lab, as an operator would; (rc, output)."""
        command = [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i",
            self.inventory,
            str(PROJECT / "playbooks" / playbook),
            *arguments,
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        return result.returncode, result.stdout + result.stderr


@pytest.fixture(scope="module")
def lab(request):
    return Lab(request.config.option.ansible_inventory)


def cluster_health(lab):
    """What is missing for the cluster to be whole with the nginx app running, as a list of complaints."""
    state = lab.master_state()
    if state is None:
        return ["no leading master answers /master/state"]
    problems = []
    active_agents = [agent["hostname"] for agent in state["slaves"] if agent.get("active")]
    if len(active_agents) != len(lab.groups["mesos_agents"]):
        problems.append(f"active agents {active_agents}, expected {len(lab.groups['mesos_agents'])}")
    if not any(framework["name"] == "marathon" and framework["active"] for framework in state["frameworks"]):
        problems.append("Marathon's framework is not active on the leading master")
    app = (lab.marathon("/v2/apps/nginx") or {}).get("app")
    if app is None:
        problems.append("Marathon does not answer for the app nginx")
    elif app["tasksRunning"] != app["instances"]:
        problems.append(f"nginx runs {app['tasksRunning']} of {app['instances']} instances")
    return problems


def wait_until_whole(lab, seconds=RECOVERY_SECONDS):
    """Wait until cluster_health has no complaint; the seconds it took. Fails with the last complaints."""
    started = time.monotonic()
    problems = ["not checked yet"]
    while time.monotonic() - started < seconds:
        problems = cluster_health(lab)
        if not problems:
            return round(time.monotonic() - started, 1)
        time.sleep(2)
    pytest.fail(f"the cluster did not recover within {seconds} s: {problems}")


def app_ids(lab):
    return sorted(app["id"] for app in (lab.marathon("/v2/apps") or {"apps": []})["apps"])


def nginx_tasks(lab):
    return sorted(
        (task["id"], task["host"], task["ports"][0])
        for task in (lab.marathon("/v2/apps/nginx/tasks") or {"tasks": []})["tasks"]
        if task.get("state") == "TASK_RUNNING"
    )


@pytest.fixture(scope="module")
def nginx(lab):
    """The reference nginx app, started through Marathon as the runbook does; the apps before the chaos."""
    wait_until_whole_without_nginx(lab)
    if "/nginx" not in app_ids(lab):  # a verify run again on the same nodes finds it running
        posted = lab.host(lab.marathon_node).run(
            "curl -s -o /dev/null -w '%%{http_code}' -X POST http://127.0.0.1:8080/v2/apps "
            "-H 'Content-Type: application/json' -d %s",
            json.dumps(NGINX_APP),
        )
        assert posted.stdout == "201", f"POST /v2/apps answered {posted.stdout} {posted.stderr}"
    report("nginx_started_in_seconds", wait_until_whole(lab))
    apps = app_ids(lab)
    assert "/nginx" in apps
    return {"apps": apps, "tasks": nginx_tasks(lab)}


def wait_until_whole_without_nginx(lab):
    """The converged cluster: a leader with every agent, and Marathon subscribed (before nginx exists)."""
    started = time.monotonic()
    problems = []
    while time.monotonic() - started < RECOVERY_SECONDS:
        problems = [problem for problem in cluster_health(lab) if "nginx" not in problem]
        if not problems:
            return
        time.sleep(2)
    pytest.fail(f"the converged cluster is not whole: {problems}")


def partition_rules(peer):
    return [f"INPUT -s {peer} -j DROP", f"OUTPUT -d {peer} -j DROP"]


def test_a_partition_longer_than_the_session_timeout_heals_without_losing_an_app(lab, nginx):
    node1, node2 = sorted(lab.variables)
    peers = {node1: lab.address(node2), node2: lab.address(node1)}
    leader_before = lab.master_state()["id"]
    try:
        for node, peer in peers.items():
            for rule in partition_rules(peer):
                lab.host(node).check_output(f"iptables -I {rule}")
        time.sleep(PARTITION_SECONDS)
        # Defect 3 of the issue: after the session timeout without ZooKeeper, no master may claim to lead.
        redirect = lab.host(lab.master_node).run(
            "curl -s -o /dev/null -w '%%{http_code}' --max-time 5 http://%s:5050/master/redirect",
            lab.address(lab.master_node),
        )
        report("master_redirect_status_during_the_partition", redirect.stdout)
    finally:
        for node, peer in peers.items():
            for rule in partition_rules(peer):
                lab.host(node).run(f"iptables -D {rule}")
    report("partition_seconds", PARTITION_SECONDS)
    report("recovered_after_heal_in_seconds", wait_until_whole(lab))
    report("master_failed_over_across_the_partition", lab.master_state()["id"] != leader_before)
    assert app_ids(lab) == nginx["apps"], "an app was lost (or appeared) across the partition"


class RequestLoop(threading.Thread):
    """Requests from this machine to nginx's host port until stopped (at most MAX_REQUESTS)."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url = url
        self.stopped = threading.Event()
        self.succeeded = 0
        self.failures: list[str] = []

    def run(self):
        started = time.monotonic()
        while not self.stopped.is_set() and self.succeeded + len(self.failures) < MAX_REQUESTS:
            try:
                with urllib.request.urlopen(self.url, timeout=REQUEST_TIMEOUT) as response:
                    if b"Welcome to nginx" in response.read():
                        self.succeeded += 1
                    else:
                        self.failures.append(f"{time.monotonic() - started:.1f}s unexpected page")
            except OSError as error:
                self.failures.append(f"{time.monotonic() - started:.1f}s {error}")
            self.stopped.wait(REQUEST_INTERVAL)

    def stop(self):
        self.stopped.set()
        self.join()
        failed = len(self.failures)
        return {"requests": self.succeeded + failed, "failed": failed, "first": self.failures[:5]}


class LeaderWatch(threading.Thread):
    """Samples which master leads (its id and election time) every second; distinct leaders - 1 =
    master failovers."""

    def __init__(self, lab):
        super().__init__(daemon=True)
        self.lab = lab
        self.stopped = threading.Event()
        self.leaders: list[tuple] = []

    def run(self):
        while not self.stopped.is_set():
            state = self.lab.master_state()
            if state is not None and state.get("elected_time"):
                leader = (state["id"], state["elected_time"])
                if not self.leaders or self.leaders[-1] != leader:
                    self.leaders.append(leader)
            self.stopped.wait(1)

    def stop(self):
        self.stopped.set()
        self.join()
        return max(len(self.leaders) - 1, 0)


def rolling_restart_under_load(lab, nginx, services):
    """Run rolling-restart.yml for `services` while requests go to nginx; what it cost."""
    tasks = nginx_tasks(lab)
    assert tasks, "nginx runs no task"
    _task_id, agent, port = tasks[0]
    address = lab.address(lab.node_of(agent))
    assert ipaddress.ip_address(address) in LAB_SUBNET, f"{address} is not a lab node address"
    requests = RequestLoop(f"http://{address}:{port}/")
    leaders = LeaderWatch(lab)
    requests.start()
    leaders.start()
    started = time.monotonic()
    try:
        rc, output = lab.playbook("rolling-restart.yml", "-e", f"rolling_restart_services={services}")
    finally:
        seconds = round(time.monotonic() - started, 1)
        time.sleep(2)  # a few requests after the last restart too
        served = requests.stop()
        failovers = leaders.stop()
    report(f"rolling_restart_{services}", {"seconds": seconds, "nginx": served, "master_failovers": failovers})
    assert rc == 0, f"rolling-restart.yml ({services}) failed:\n{output[-6000:]}"
    return served, failovers, tasks


def test_b1_a_rolling_restart_of_zookeeper_keeps_nginx_serving_without_a_master_failover(lab, nginx):
    served, failovers, tasks = rolling_restart_under_load(lab, nginx, "zookeeper")
    assert served["failed"] == 0, f"nginx failed requests during the ZooKeeper rolling restart: {served}"
    wait_until_whole(lab)
    assert nginx_tasks(lab) == tasks, "nginx's task was replaced"
    assert app_ids(lab) == nginx["apps"]
    # Defect 2 of the issue: a ZooKeeper server restart is a connection loss, not a session expiry.
    assert failovers == 0, f"the ZooKeeper rolling restart caused {failovers} master failover(s)"


def test_b2_a_rolling_restart_of_the_control_plane_keeps_nginx_serving(lab, nginx):
    served, _failovers, tasks = rolling_restart_under_load(lab, nginx, "mesos_master,mesos_agent,marathon")
    assert served["failed"] == 0, f"nginx failed requests during the control plane's rolling restart: {served}"
    wait_until_whole(lab)
    assert nginx_tasks(lab) == tasks, "nginx's task did not keep running across the restarts"
    assert app_ids(lab) == nginx["apps"]


def test_c_the_reference_runbook_checks_pass_afterwards(lab, nginx):
    report("recovered_before_the_runbook_in_seconds", wait_until_whole(lab))
    assert app_ids(lab) == nginx["apps"], "an app was lost"
    # The runbook's checks start their own nginx app: remove ours first.
    deleted = lab.host(lab.marathon_node).run(
        "curl -s -o /dev/null -w '%{http_code}' -X DELETE http://127.0.0.1:8080/v2/apps/nginx"
    )
    assert deleted.stdout == "200", f"DELETE /v2/apps/nginx answered {deleted.stdout}"
    for _ in range(60):
        if "/nginx" not in app_ids(lab):
            break
        time.sleep(2)
    rc, output = lab.playbook("smoke.yml")
    assert rc == 0, f"the runbook's checks (playbooks/smoke.yml) failed:\n{output[-6000:]}"
