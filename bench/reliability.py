"""`make bench-reliability`: faults injected into a real cluster under load; write docs/reliability.md.

The cluster (all real processes on loopback): a three-server ZooKeeper ensemble (Debian's package), three
masters, three agents, two Marathons, and N Marathon apps of one `sleep` task each. A client keeps POSTing,
PUTting and DELETEing apps through the Marathons meanwhile. Each fault is injected R times; an observer samples
every master and Marathon several times a second, and each run reports: time to a master leader serving, time
until every agent is active on it, time until Marathon reports every task RUNNING, the client's failed requests,
tasks lost or duplicated, master failovers and Marathon leader changes (issue 11, "Figures").

The cluster is built with the chaos tests' own code, so that the benchmark runs what the tests run: the test
harness (runtime/tests/harness: `start_ensemble`, `ProcessLauncher`) and the chaos tests' cluster
(runtime/tests/chaos/chaos_cluster.py: `Cluster`, `app`, `session_of_member`). Only those plain modules are
imported, never a conftest or a test module (tests/test_bench_scripts.py checks that this script starts).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
# The test harness and the chaos tests' cluster are plain modules: import them rather than keep a copy here.
# runtime/tests is where pytest finds them too (its `pythonpath` in runtime/pyproject.toml).
sys.path.insert(0, str(REPOSITORY / "runtime" / "tests"))

import pytest  # noqa: E402  (the test helpers report a timeout with pytest.fail, an exception outside pytest)
from chaos.chaos_cluster import Cluster, app, session_of_member  # noqa: E402
from chaos.chaos_cluster import http_without_redirects as http  # noqa: E402  (only the leader answers 200)
from harness.ensemble import ZooKeeperEnsemble, start_ensemble  # noqa: E402
from harness.processes import MesoliteProcess, ProcessLauncher  # noqa: E402
from run import machine  # noqa: E402  (bench/run.py, next to this file)

RESULTS = REPOSITORY / "docs" / "reliability.md"
NOTES_HEADING = "## Notes"  # hand-written analysis in docs/reliability.md, kept when the file is rewritten
AGENTS = 3
MASTERS = 3
MARATHONS = 2
# Steady apps sleep for a day (so none ends during the run); the load app's tasks are told apart by the marker.
STEADY_SLEEP = "sleep 86399"
LOAD_SLEEP = "sleep 86398"
STEADY_GROUP = "/bench/steady"
SAMPLE_INTERVAL = 0.1
RECOVERY_TIMEOUT = 120.0
REQUEST_TIMEOUT = 10.0
NON_TERMINAL = {"TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_UNREACHABLE"}


class BenchError(Exception):
    pass


def failed(error: BaseException) -> bool:
    """Whether `error` is a failure of the run (pytest.fail raises an exception that is no Exception)."""
    return isinstance(error, Exception | pytest.fail.Exception)


# --- observations -------------------------------------------------------------------------------------------


# A sample's answers reflect the cluster somewhere between `started` (the first request) and `at` (the last
# answer): recovery counts only samples started after the fault, and is timed at their end (an upper bound).


@dataclass
class MasterSample:
    started: float
    at: float
    serving: list[tuple[tuple[str, float], int]]  # (term, active agents) of every master answering /master/state


@dataclass
class MarathonSample:
    started: float
    at: float
    leader: str | None
    running: dict[str, set[str]]  # steady app id -> ids of its tasks Marathon reports TASK_RUNNING


@dataclass(eq=False)  # a thread must stay hashable
class Observer(threading.Thread):
    """Samples every master (/master/state, redirects not followed) and the Marathons (/v2/info, /v2/apps)."""

    cluster: Cluster
    masters: list[MasterSample] = field(default_factory=list)
    marathons: list[MarathonSample] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(daemon=True)
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.masters.append(self.sample_masters())
            self.marathons.append(self.sample_marathons())
            time.sleep(SAMPLE_INTERVAL)

    def sample_masters(self) -> MasterSample:
        started = time.monotonic()
        serving = []
        for master in list(self.cluster.masters):
            if master.process.poll() is not None:
                continue
            status, _, body = http("GET", master.url("/master/state"), timeout=2)
            if status == 200 and isinstance(body, dict):
                active = sum(1 for agent in body.get("slaves", []) if agent.get("active"))
                serving.append(((body["id"], body["elected_time"]), active))
        return MasterSample(started, time.monotonic(), serving)

    def sample_marathons(self) -> MarathonSample:
        started = time.monotonic()
        for marathon in list(self.cluster.marathons):
            if marathon.process.poll() is not None:
                continue
            status, _, info = http("GET", marathon.url("/v2/info"), timeout=2)
            if status != 200 or not isinstance(info, dict):
                continue
            status, _, body = http("GET", marathon.url("/v2/apps?embed=apps.tasks"), timeout=2)
            if status != 200 or not isinstance(body, dict):
                continue
            running = {
                entry["id"]: {task["id"] for task in entry.get("tasks", []) if task.get("state") == "TASK_RUNNING"}
                for entry in body["apps"]
                if entry["id"].startswith(f"{STEADY_GROUP}/")
            }
            return MarathonSample(started, time.monotonic(), info.get("leader"), running)
        return MarathonSample(started, time.monotonic(), None, {})

    def stop(self) -> None:
        self.stopped.set()
        self.join(10)


@dataclass(eq=False)
class LoadClient(threading.Thread):
    """Writes to Marathon without pause: POST a new app, scale the load app, DELETE the new app, scale again.

    Requests go round-robin to the Marathons whose process runs (as a load balancer with a health check would);
    a non-2xx answer, a timeout or a refused connection is a failed request."""

    cluster: Cluster
    requests: list[tuple[float, float, str, int]] = field(default_factory=list)  # start, end, method, status

    def __post_init__(self) -> None:
        super().__init__(daemon=True)
        self.stopped = threading.Event()

    def send(self, method: str, path: str, body: object = None) -> int:
        live = [marathon for marathon in list(self.cluster.marathons) if marathon.process.poll() is None]
        if not live:
            return 0
        marathon = live[len(self.requests) % len(live)]
        started = time.monotonic()
        status, _, _ = http(method, marathon.url(path), body, timeout=REQUEST_TIMEOUT)
        self.requests.append((started, time.monotonic(), method, status))
        if not 200 <= status < 300:
            self.stopped.wait(0.05)  # a failed request answers fast: do not spin (clients back off a little too)
        return status

    def run(self) -> None:
        number = 0
        while not self.stopped.is_set():
            posted = f"/bench/posted/app-{number:05d}"
            created = self.send("POST", "/v2/apps", {**app(posted, instances=0), "cmd": LOAD_SLEEP})
            self.send("PUT", "/v2/apps/bench/load?force=true", {"instances": 1})
            if 200 <= created < 300:
                self.send("DELETE", f"/v2/apps{posted}?force=true")
            self.send("PUT", "/v2/apps/bench/load?force=true", {"instances": 0})
            number += 1
            self.stopped.wait(0.05)

    def between(self, start: float, end: float) -> tuple[int, int, float]:
        """(failed, total, seconds from the first failure's start to the last one's end) of the requests sent
        from `start` to `end`."""
        window = [request for request in list(self.requests) if start <= request[0] <= end]
        failures = [(started, ended) for started, ended, _, status in window if not 200 <= status < 300]
        span = failures[-1][1] - failures[0][0] if failures else 0.0
        return len(failures), len(window), span

    def stop(self) -> None:
        self.stopped.set()
        self.join(REQUEST_TIMEOUT * 2)


# --- the cluster --------------------------------------------------------------------------------------------


@dataclass
class Bench:
    cluster: Cluster
    ensemble: ZooKeeperEnsemble
    launcher: ProcessLauncher
    apps: int
    master_session_timeout: float
    marathon_session_timeout: float
    observer: Observer | None = None

    @property
    def longest_session_timeout(self) -> float:
        return max(self.master_session_timeout, self.marathon_session_timeout)

    def start(self) -> None:
        for _ in range(MASTERS):
            self.cluster.start_master(f"--zk_session_timeout={self.master_session_timeout:g}secs")
        self.cluster.leading_master(timeout=60)
        for _ in range(AGENTS):
            self.cluster.start_agent()
        for _ in range(MARATHONS):
            self.cluster.start_marathon(f"--zk_session_timeout={self.marathon_session_timeout * 1000:.0f}")
        marathon = self.cluster.marathons[0]
        steady = {
            "id": STEADY_GROUP,
            "apps": [{**app(f"{STEADY_GROUP}/app-{n:02d}"), "cmd": STEADY_SLEEP} for n in range(self.apps)],
        }
        for path, body in (("/v2/groups", steady), ("/v2/apps", {**app("/bench/load", 0), "cmd": LOAD_SLEEP})):
            status, _, answer = http("POST", marathon.url(path), body, timeout=30)
            if status != 201:
                raise BenchError(f"POST {path} answered {status}: {answer}")

    def restart(self, process: MesoliteProcess, group: list[MesoliteProcess]) -> None:
        """Start a stopped master or Marathon again with its flags and port (as systemd would), in its place."""
        arguments = process.arguments[3:]  # after `python -m mesolite.cli`
        health = "/v2/apps" if process.name == "marathon" else "/health"
        group[group.index(process)] = self.launcher.start(
            process.name, *arguments, port=process.port, health_path=health, timeout=60
        )

    def leading_master(self) -> MesoliteProcess:
        return self.cluster.leading_master()

    def leading_marathon(self) -> MesoliteProcess:
        leader = None
        for marathon in self.cluster.marathons:
            status, _, info = http("GET", marathon.url("/v2/info"), timeout=5)
            if status == 200 and isinstance(info, dict) and info.get("leader"):
                leader = info["leader"]
                break
        for marathon in self.cluster.marathons:
            if leader == f"127.0.0.1:{marathon.port}":
                return marathon
        raise BenchError(f"no Marathon leads ({leader!r})")

    def steady(self, since: float) -> bool:
        """Full strength and quiet: one master serving with every agent, every steady task running at Marathon."""
        assert self.observer is not None
        if not all(process.process.poll() is None for process in self.cluster.masters + self.cluster.marathons):
            return False
        if not all(server.running() for server in self.ensemble.servers):
            return False
        masters = [sample for sample in self.observer.masters[-3:] if sample.started >= since]
        marathons = [sample for sample in self.observer.marathons[-3:] if sample.started >= since]
        return (
            len(masters) == 3
            and all(len(sample.serving) == 1 and sample.serving[0][1] == AGENTS for sample in masters)
            and len(marathons) == 3
            and all(sample.leader and self.all_running(sample) for sample in marathons)
        )

    def all_running(self, sample: MarathonSample) -> bool:
        return len(sample.running) == self.apps and all(sample.running.values())

    def wait_steady(self, timeout: float = RECOVERY_TIMEOUT) -> None:
        since = time.monotonic()
        deadline = since + timeout
        while not self.steady(since):
            if time.monotonic() > deadline:
                raise BenchError(f"the cluster was not back to steady state after {timeout:.0f}s")
            time.sleep(0.2)

    def master_tasks(self) -> dict[str, int]:
        """Non-terminal tasks of each steady app at the leading master (by task name: the app id with dots)."""
        status, _, body = http("GET", self.leading_master().url("/master/tasks?limit=100000"), timeout=10)
        counts: dict[str, int] = {}
        if status == 200 and isinstance(body, dict):
            for task in body.get("tasks", []):
                if task.get("state") in NON_TERMINAL and task.get("name", "").startswith("bench.steady."):
                    counts[task["name"]] = counts.get(task["name"], 0) + 1
        return counts

    def sleep_processes(self) -> int:
        """Processes running the steady apps' command under this run's directory (tasks the OS really runs)."""
        root = str(self.cluster.directory.resolve())
        count = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                arguments = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
                if arguments == STEADY_SLEEP.encode().split() and os.readlink(entry / "cwd").startswith(root):
                    count += 1
        return count


# --- faults -------------------------------------------------------------------------------------------------


@dataclass
class Injected:
    """What a fault did: recovery is timed from `reference`; the window lasts at least until `settle_until`
    (long enough for a failover, had the fault caused one, to show); `restore` brings the cluster back after."""

    started: float
    reference: float
    settle_until: float
    restore: Callable[[], None] = lambda: None
    detail: str = ""


def kill_master_leader(bench: Bench, sig: signal.Signals) -> Injected:
    leader = bench.leading_master()
    started = time.monotonic()
    leader.kill(sig)
    return Injected(started, started, started, lambda: bench.restart(leader, bench.cluster.masters))


def kill_session_server(bench: Bench) -> Injected:
    session = session_of_member(bench.cluster.mesos_zk, "json.info")
    index = bench.ensemble.session_server_index(session)
    if index is None:
        raise BenchError("the leading master's session is on no ZooKeeper server")
    started = time.monotonic()
    bench.ensemble.kill(index)
    # Twice the session timeout: a failover, had there been one, would show by then.
    return Injected(
        started,
        started,
        started + 2 * bench.master_session_timeout,
        lambda: bench.ensemble.start(index),
        f"server {index} (ZooKeeper {'leader' if index == bench.ensemble.leader_index() else 'follower'})",
    )


def rolling_restart(bench: Bench) -> Injected:
    ensemble = bench.ensemble
    # The ZooKeeper leader last, as the zookeeper role's rolling restart does.
    order = sorted(range(len(ensemble.servers)), key=lambda index: index == ensemble.leader_index())
    started = time.monotonic()
    for index in order:
        ensemble.restart(index)  # SIGTERM, start, wait until it serves
        ensemble.wait_serving()
    ended = time.monotonic()
    return Injected(started, started, ended + bench.master_session_timeout, detail=f"took {ended - started:.1f}s")


def lose_quorum(bench: Bench) -> Injected:
    ensemble = bench.ensemble
    killed = [index for index in range(len(ensemble.servers)) if index != ensemble.leader_index()]
    started = time.monotonic()
    for index in killed:
        ensemble.kill(index)  # one server of three: no quorum, no server answers clients
    time.sleep(2 * bench.longest_session_timeout)
    restored = time.monotonic()
    for index in killed:
        ensemble.start(index, wait=False)
    ensemble.wait_serving()
    return Injected(
        started, restored, restored, detail=f"outage {restored - started:.1f}s, recovery timed from its end"
    )


def kill_marathon_leader(bench: Bench) -> Injected:
    leader = bench.leading_marathon()
    started = time.monotonic()
    leader.kill(signal.SIGKILL)
    return Injected(started, started, started, lambda: bench.restart(leader, bench.cluster.marathons))


@dataclass
class Fault:
    key: str
    title: str
    inject: Callable[[Bench], Injected]
    new_master_term: bool  # recovery needs a new master leader (the old one is gone)


FAULTS = [
    Fault("master-sigkill", "master leader SIGKILL", lambda bench: kill_master_leader(bench, signal.SIGKILL), True),
    Fault("master-sigterm", "master leader SIGTERM", lambda bench: kill_master_leader(bench, signal.SIGTERM), True),
    Fault("zk-session-server", "ZooKeeper server of the leader's session SIGKILL", kill_session_server, False),
    Fault("zk-rolling-restart", "ZooKeeper rolling restart", rolling_restart, False),
    Fault("zk-quorum-loss", "ZooKeeper quorum lost > session timeout", lose_quorum, False),
    Fault("marathon-sigkill", "Marathon leader SIGKILL", kill_marathon_leader, False),
]


# --- one measured run ---------------------------------------------------------------------------------------


def measure(bench: Bench, load: LoadClient, fault: Fault) -> dict:
    observer = bench.observer
    assert observer is not None
    bench.wait_steady()
    before_master = observer.masters[-1].serving[0][0]
    before_marathon = observer.marathons[-1]
    before_tasks = {app_id: set(ids) for app_id, ids in before_marathon.running.items()}
    masters_from, marathons_from = len(observer.masters), len(observer.marathons)
    injected = fault.inject(bench)

    def master_recovered(sample: MasterSample) -> bool:
        return any(term != before_master or not fault.new_master_term for term, _ in sample.serving)

    leader_at = agents_at = tasks_at = None
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while time.monotonic() < deadline:
        masters = [s for s in observer.masters[masters_from:] if s.started >= injected.reference]
        marathons = [s for s in observer.marathons[marathons_from:] if s.started >= injected.reference]
        leader_at = next((s.at for s in masters if master_recovered(s)), None)
        agents_at = next(
            (s.at for s in masters if master_recovered(s) and any(active == AGENTS for _, active in s.serving)), None
        )
        tasks_at = next((s.at for s in marathons if s.leader and bench.all_running(s)), None)
        if None not in (leader_at, agents_at, tasks_at) and time.monotonic() >= injected.settle_until:
            break
        time.sleep(0.2)
    time.sleep(1)  # a little longer: what happens just after recovery belongs to the fault too
    ended = time.monotonic()
    window_masters = [s for s in observer.masters[masters_from:] if injected.started <= s.started <= ended]
    window_marathons = [s for s in observer.marathons[marathons_from:] if injected.started <= s.started <= ended]
    terms = {term for sample in window_masters for term, _ in sample.serving} - {before_master}
    leaders = [s.leader for s in window_marathons if s.leader]
    marathon_changes = sum(1 for previous, current in zip([before_marathon.leader, *leaders], leaders, strict=False)
                           if current != previous)  # fmt: skip
    # What Marathon reports after recovery (the last sample with an answer: the window may end in a failed one).
    answered = [s for s in window_marathons if s.leader]
    after_tasks = answered[-1].running if answered and tasks_at is not None else None
    failed_requests, requests, failing_span = load.between(injected.started, ended)

    def since(at: float | None) -> float | None:
        return None if at is None else at - injected.reference

    result = {
        "fault": fault.key,
        "detail": injected.detail,
        "leader_serving_s": since(leader_at),
        "agents_reregistered_s": since(agents_at),
        "agents_after_leader_s": None if None in (leader_at, agents_at) else agents_at - leader_at,
        "tasks_running_s": since(tasks_at),
        "fault_to_reference_s": injected.reference - injected.started,
        "longest_leaderless_s": longest_gap(window_masters),
        "requests": requests,
        "requests_failed": failed_requests,
        "writes_failing_s": failing_span,
        "tasks_lost": None
        if after_tasks is None
        else sum(len(ids - after_tasks.get(app_id, set())) for app_id, ids in before_tasks.items()),
        "tasks_duplicated_marathon": None
        if after_tasks is None
        else sum(max(0, len(ids) - 1) for ids in after_tasks.values()),
        "master_failovers": len(terms),
        "two_leaders_samples": sum(1 for sample in window_masters if len(sample.serving) > 1),
        "marathon_leader_changes": marathon_changes,
    }
    result["recovered"] = None not in (leader_at, agents_at, tasks_at)
    with contextlib.suppress(Exception):
        master_counts = bench.master_tasks()
        result["tasks_duplicated_master"] = sum(max(0, count - 1) for count in master_counts.values())
    result["steady_sleep_processes"] = bench.sleep_processes()
    injected.restore()
    return result


def longest_gap(samples: list[MasterSample]) -> float:
    """The longest stretch of samples in which no master served /master/state."""
    longest, gap_start = 0.0, None
    for sample in samples:
        if sample.serving:
            if gap_start is not None:
                longest = max(longest, sample.at - gap_start)
            gap_start = None
        elif gap_start is None:
            gap_start = sample.at
    if gap_start is not None and samples:
        longest = max(longest, samples[-1].at - gap_start)
    return longest


# --- the report ---------------------------------------------------------------------------------------------

METRICS = [
    ("leader_serving_s", "new leader serving (s)"),
    ("agents_reregistered_s", "all agents re-registered (s)"),
    ("agents_after_leader_s", "agents after leader (s)"),
    ("tasks_running_s", "all tasks RUNNING at Marathon (s)"),
    ("longest_leaderless_s", "longest time without a serving master (s)"),
    ("requests_failed", "requests failed"),
    ("writes_failing_s", "writes failing (s)"),
    ("tasks_lost", "tasks lost"),
    ("tasks_duplicated_marathon", "tasks duplicated (Marathon)"),
    ("tasks_duplicated_master", "tasks duplicated (master)"),
    ("master_failovers", "master failovers"),
    ("marathon_leader_changes", "Marathon leader changes"),
]


def summary(runs: list[dict], key: str) -> tuple[float | None, float | None, int]:
    """(median, max, runs without a value) of `key` over the runs."""
    values = [run[key] for run in runs if run.get(key) is not None]
    if not values:
        return None, None, len(runs)
    return statistics.median(values), max(values), len(runs) - len(values)


def cell(runs: list[dict], key: str) -> str:
    median, maximum, missing = summary(runs, key)
    if median is None:
        return "n/a"
    digits = 2 if key.endswith("_s") else 0
    text = f"{median:.{digits}f} / {maximum:.{digits}f}"
    if key == "requests_failed":
        text += f" of {sum(run['requests'] for run in runs)}"
    return text + (f" ({missing} not recovered)" if missing else "")


def targets(results: dict[str, list[dict]], master_session_timeout: float) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for the targets of issue 11."""
    kills = results.get("master-sigkill", [])
    checks: list[tuple[str, str, bool | None]] = []
    bound = master_session_timeout + 1
    _, worst, missing = summary(kills, "leader_serving_s")
    checks.append((
        f"new leader serving within the session timeout + 1 s ({bound:g} s) of a master SIGKILL",
        "no run" if worst is None else f"max {worst:.2f} s" + (f", {missing} runs not recovered" if missing else ""),
        None if not kills else worst is not None and not missing and worst <= bound,
    ))  # fmt: skip
    _, worst, missing = summary(kills, "agents_after_leader_s")
    checks.append((
        "all agents re-registered within 2 s after that",
        "no run" if worst is None else f"max {worst:.2f} s" + (f", {missing} runs not recovered" if missing else ""),
        None if not kills else worst is not None and not missing and worst <= 2,
    ))  # fmt: skip
    for key, name in (("zk-session-server", "ZooKeeper server loss"), ("zk-rolling-restart", "rolling restart")):
        runs = results.get(key, [])
        failovers = sum(run["master_failovers"] for run in runs)
        checks.append((
            f"{name}: 0 master failovers",
            f"{failovers} in {len(runs)} runs",
            None if not runs else failovers == 0 and all(run["recovered"] for run in runs),
        ))  # fmt: skip
    return checks


def verdict(met: bool | None) -> str:
    return {True: "met", False: "**MISSED**", None: "not run"}[met]


def write_results(results: dict[str, list[dict]], options: argparse.Namespace, context: dict) -> str:
    faults = [fault for fault in FAULTS if fault.key in results]
    header = "| | " + " | ".join(fault.title for fault in faults) + " |"
    rows = [header, "| --- |" + " ---: |" * len(faults)]
    for key, label in METRICS:
        rows.append(f"| {label} | " + " | ".join(cell(results[fault.key], key) for fault in faults) + " |")
    target_rows = ["| target | measured | |", "| --- | --- | --- |"]
    target_rows += [f"| {name} | {measured} | {verdict(met)} |" for name, measured, met in targets(
        results, options.master_session_timeout)]  # fmt: skip
    run_rows = [
        "| fault | run | leader (s) | agents (s) | tasks (s) | leaderless (s) | failed / requests | lost "
        "| dup. | failovers | Marathon changes | note |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]

    def number(value, digits: int = 2) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    for fault in faults:
        for index, run in enumerate(results[fault.key], 1):
            if "error" in run:
                run_rows.append(f"| {fault.title} | {index} | failed: {run['error']} |" + " |" * 9)
                continue
            duplicated = max(run["tasks_duplicated_marathon"] or 0, run.get("tasks_duplicated_master") or 0)
            run_rows.append(
                f"| {fault.title} | {index} | {number(run['leader_serving_s'])}"
                f" | {number(run['agents_reregistered_s'])}"
                f" | {number(run['tasks_running_s'])} | {number(run['longest_leaderless_s'])}"
                f" | {run['requests_failed']} / {run['requests']} | {number(run['tasks_lost'], 0)} | {duplicated}"
                f" | {run['master_failovers']} | {run['marathon_leader_changes']} | {run['detail']} |"
            )
    notes = ""
    if RESULTS.exists():
        previous = RESULTS.read_text()
        if NOTES_HEADING in previous:
            notes = "\n" + previous[previous.index(NOTES_HEADING) :].rstrip() + "\n"
    text = f"""# Reliability

Written by `make bench-reliability` (bench/reliability.py) on {time.strftime("%Y-%m-%d %H:%M %Z")}, in
{context["minutes"]:.1f} minutes; rerun with `make bench-reliability` (or `bench/reliability.sh --repeat 10`
for more runs, `--no-write` to print only). Machine: {context["machine"]}; load average
{context["load_before"]:.1f} before, {context["load_after"]:.1f} after (2 cores: above 2, other work competed
for the CPU, and the times below grow with it).

## What is measured

A real cluster on loopback, built with the chaos tests' code (runtime/tests/chaos): a three-server ZooKeeper
ensemble (Debian's package, tick 500 ms), {MASTERS} masters
(`--zk_session_timeout={options.master_session_timeout:g}secs`, `--allocation_interval=100ms`,
`--registry_flush_interval=100ms`), {AGENTS} agents (`--registration_backoff_factor=200ms`), {MARATHONS} Marathons
(`--zk_session_timeout={options.marathon_session_timeout * 1000:.0f}`), and {options.apps} Marathon apps of one
`{STEADY_SLEEP}` task each.
Throughout, a client writes to Marathon without pause (POST a new app, PUT the scale of a load app, DELETE the
new app, PUT the scale back; round-robin over the Marathons whose process runs, as a load balancer would).
Each fault is injected {options.repeat} times, from full strength (the killed process is restarted, with its
flags and port, after the measurement); an observer samples every master's `/master/state` (redirects not
followed: only the leader answers 200) and Marathon's `/v2/info` and `/v2/apps?embed=apps.tasks` every
{SAMPLE_INTERVAL * 1000:.0f} ms or so (each round of requests takes time too: the resolution is a few hundred ms).

Faults: *master leader SIGKILL* and *SIGTERM* (a graceful stop, as `systemctl restart` does); *ZooKeeper server
of the leader's session SIGKILL* (the server holding the leading master's session; restarted after twice the
session timeout); *ZooKeeper rolling restart* (each server stopped and started in turn, the ZooKeeper leader
last, waiting each time until the ensemble serves); *ZooKeeper quorum lost* (two servers of three killed for
twice the longest session timeout, then started: recovery times for this fault count from the restart, not
from the loss); *Marathon leader SIGKILL*.

Each cell: median / max over the runs.

{chr(10).join(rows)}

- *new leader serving*: from the fault until a master answers `/master/state` with 200 — a master of a new term
  after a master fault; any master (usually the old leader, which never stopped) after the other faults.
- *all agents re-registered*: until that master lists all {AGENTS} agents active (after a failover the new
  leader knows them from the registry, inactive, until each re-registers). *agents after leader*: the difference.
- *all tasks RUNNING at Marathon*: until Marathon (through any Marathon, which proxies to its leader) reports a
  TASK_RUNNING task for every steady app.
- *requests failed*: the client's requests sent from the fault until recovery (+1 s) that got no 2xx answer
  (503 while no Marathon leads, timeouts of {REQUEST_TIMEOUT:g} s, refused connections), and the total of them.
- *tasks lost*: steady tasks Marathon reported running before the fault and not after recovery (replaced or
  gone). *duplicated*: running tasks beyond an app's one instance, at Marathon and at the leading master
  (non-terminal tasks); the run table's column is the larger of the two. The OS view (sleep processes of the
  steady apps) is in the raw results.
- *writes failing*: from the start of the first failed request of the window to the end of the last one.
- *master failovers*: master terms (id, elected time) other than the one before the fault seen during the
  window. *Marathon leader changes*: changes of the leader `/v2/info` names.

## Targets (issue 11)

{chr(10).join(target_rows)}

## Every run

{chr(10).join(run_rows)}

Raw results:

```json
{json.dumps(results, indent=2)}
```
{notes}"""
    RESULTS.write_text(text)
    return "\n".join(target_rows)


# --- main ---------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", "-r", type=int, default=5, help="runs of each fault (default 5)")
    parser.add_argument("--apps", type=int, default=10, help="steady Marathon apps of one task (default 10)")
    parser.add_argument("--master-session-timeout", type=float, default=4.0, help="masters' ZooKeeper session (s)")
    parser.add_argument("--marathon-session-timeout", type=float, default=3.0, help="Marathons' session (s)")
    parser.add_argument(
        "--fault", action="append", choices=[fault.key for fault in FAULTS], help="only these faults (repeatable)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs)")
    parser.add_argument("--no-write", action="store_true", help="print results only; leave docs/reliability.md")
    options = parser.parse_args()
    # Every process runs in a session of its own: a SIGTERM (e.g. from `timeout`) must reach the clean-up below.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    directory = Path(tempfile.mkdtemp(prefix="mesolite-reliability-"))
    print(f"reliability: logs in {directory}", flush=True)
    began, load_before = time.monotonic(), os.getloadavg()[0]
    launcher = ProcessLauncher(directory / "processes")
    launcher.directory.mkdir()
    ensemble: ZooKeeperEnsemble | None = None
    bench: Bench | None = None
    load: LoadClient | None = None
    results: dict[str, list[dict]] = {}
    try:
        ensemble = start_ensemble(directory / "zookeeper")
        root = ensemble.url("")
        cluster = Cluster(f"{root}/mesos", f"{root}/marathon", launcher, launcher.directory)
        bench = Bench(
            cluster, ensemble, launcher, options.apps, options.master_session_timeout, options.marathon_session_timeout
        )
        print("reliability: starting 3 ZooKeeper servers, 3 masters, 3 agents, 2 Marathons", flush=True)
        bench.start()
        bench.observer = Observer(cluster)
        bench.observer.start()
        bench.wait_steady()
        print(f"reliability: cluster steady after {time.monotonic() - began:.0f}s; load client started", flush=True)
        load = LoadClient(cluster)
        load.start()
        for fault in FAULTS:
            if options.fault and fault.key not in options.fault:
                continue
            for run in range(1, options.repeat + 1):
                try:
                    result = measure(bench, load, fault)
                except BaseException as error:
                    if not failed(error):
                        raise
                    result = {"fault": fault.key, "error": f"{type(error).__name__}: {error}"[:300]}
                    options.keep = True
                results.setdefault(fault.key, []).append(result)
                shown = {key: round(value, 2) if isinstance(value, float) else value for key, value in result.items()}
                elapsed = time.monotonic() - began
                print(f"reliability: [{elapsed:4.0f}s] {fault.key} run {run}: {json.dumps(shown)}", flush=True)
    except BaseException as error:
        if not failed(error):
            raise
        print(f"reliability: the cluster failed ({type(error).__name__}): {error}", file=sys.stderr)
        print(f"reliability: logs in {directory}", file=sys.stderr)
        return 1
    finally:
        if load is not None:
            load.stop()
        if bench is not None and bench.observer is not None:
            bench.observer.stop()
        launcher.stop_all()
        if ensemble is not None:
            ensemble.stop_all()
    context = {
        "minutes": (time.monotonic() - began) / 60,
        "machine": machine(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }
    if options.no_write:
        print(json.dumps(results, indent=2))
    else:
        print(write_results(results, options, context))
        print(f"reliability: wrote {RESULTS}")
    if not options.keep:
        shutil.rmtree(directory, ignore_errors=True)
    return 0 if all("error" not in run for runs in results.values() for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
