"""`make bench`: run the master against N simulated agents and one framework; write docs/benchmarks.md.

For each scenario (AGENTS:TASKS; 1,000:10,000, 10,000:10,000 and 10,000:50,000 by default) it starts a private
ZooKeeper and a real `mesolite master`, registers the simulated agents (bench/simulator.py, in worker processes),
subscribes a framework that launches the tasks, and measures: agent registrations per second, the master's
allocation run times (its /metrics/snapshot timer), offers per second, tasks launched-to-RUNNING per second, the
master's CPU time per task, and its memory (RSS from /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

# bench/ is on sys.path: `python bench/run.py` puts the script's directory first.
from simulator import AGENT_RESOURCES, FleetProcesses, LoadFramework, raise_file_limit

REPOSITORY = Path(__file__).resolve().parent.parent
RESULTS = REPOSITORY / "docs" / "benchmarks.md"
ZOOKEEPER_CLASSPATH = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar:/usr/share/java/slf4j-api.jar"
# Mesos's timer of allocation runs (milliseconds): the last run, and statistics over the last hour.
ALLOCATION_RUN = "allocator/mesos/allocation_run_ms"
ALLOCATION_STATISTICS = ("count", "p50", "p99", "max")
# Simulated agents per worker process (bench/simulator.py).
AGENTS_PER_PROCESS = 5000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")


def http_json(url: str) -> dict | None:
    with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)
    return None


class Services:
    """A private ZooKeeper and one master, in a scratch directory."""

    def __init__(self, directory: Path, master_flags: list[str]) -> None:
        self.directory = directory
        self.master_flags = master_flags
        self.processes: list[subprocess.Popen] = []
        self.master_port = free_port()
        self.master: subprocess.Popen | None = None

    def start(self) -> None:
        zookeeper_port = free_port()
        data = self.directory / "zookeeper"
        data.mkdir()
        config = self.directory / "zoo.cfg"
        config.write_text(
            f"tickTime=2000\ndataDir={data}\nclientPort={zookeeper_port}\nclientPortAddress=127.0.0.1\n"
            "admin.enableServer=false\nmaxClientCnxns=0\n4lw.commands.whitelist=srvr\n"
        )
        self._spawn("zookeeper", ["java", "-Xmx512m", "-cp", ZOOKEEPER_CLASSPATH,
                                  "org.apache.zookeeper.server.ZooKeeperServerMain", str(config)])  # fmt: skip
        wait_until(lambda: self._zookeeper_serving(zookeeper_port), 30, "ZooKeeper")
        self.master = self._spawn(
            "master",
            [sys.executable, "-m", "mesolite.cli", "master", "--ip=127.0.0.1", f"--port={self.master_port}",
             f"--zk=zk://127.0.0.1:{zookeeper_port}/mesos", "--quorum=1",
             f"--work_dir={self.directory / 'master'}", *self.master_flags],
        )  # fmt: skip
        wait_until(self._master_elected, 60, "the master to be elected")

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        log = (self.directory / f"{name}.log").open("wb")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    @staticmethod
    def _zookeeper_serving(port: int) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"srvr")
            return b"Mode:" in connection.recv(4096)
        return False

    def _master_elected(self) -> bool:
        if self.master is not None and self.master.poll() is not None:
            raise RuntimeError(f"the master exited with {self.master.returncode}: see {self.directory}/master.log")
        metrics = self.metrics()
        return bool(metrics and metrics.get("master/elected"))

    def metrics(self) -> dict:
        return http_json(f"http://127.0.0.1:{self.master_port}/metrics/snapshot") or {}

    def master_memory(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak) of the master in KiB."""
        assert self.master is not None
        fields = {}
        for line in Path(f"/proc/{self.master.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0])
        return fields

    def master_cpu_seconds(self) -> float:
        """CPU time (user + system) the master process has used so far."""
        assert self.master is not None
        fields = Path(f"/proc/{self.master.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        for process in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


async def scenario(services: Services, agent_count: int, task_count: int, processes: int) -> dict:
    master = f"127.0.0.1:{services.master_port}"
    tasks_per_offer = max(1, -(-task_count // agent_count))
    result: dict = {"agents": agent_count, "tasks": task_count, "tasks_per_accept": tasks_per_offer}
    fleet = FleetProcesses(master, agent_count, processes)
    framework = LoadFramework(master, task_count, tasks_per_offer=tasks_per_offer)
    framework.offers_wanted = agent_count
    framework_run = None
    try:
        started = time.monotonic()
        fleet.start()
        async with asyncio.timeout(600):
            await fleet.registered()
        result["registration_seconds"] = time.monotonic() - started
        result["registrations_per_second"] = agent_count / result["registration_seconds"]
        await asyncio.sleep(3)  # let the master settle (and allocate with nobody to offer to)
        cpu_before = services.master_cpu_seconds()
        framework_run = asyncio.create_task(framework.client.run())
        async with asyncio.timeout(600):
            await framework.done.wait()
        master_cpu = services.master_cpu_seconds() - cpu_before
        result["master_cpu_ms_per_task"] = master_cpu * 1000 / task_count
        subscribed_at = framework.subscribed_at or started
        if framework.offers_complete_at is not None:
            result["offers_per_second"] = agent_count / (framework.offers_complete_at - subscribed_at)
            result["seconds_to_first_offer_of_every_agent"] = framework.offers_complete_at - subscribed_at
        assert framework.first_launch_at is not None and framework.all_running_at is not None
        result["launch_to_running_seconds"] = framework.all_running_at - framework.first_launch_at
        result["tasks_running_per_second"] = task_count / result["launch_to_running_seconds"]
        await asyncio.sleep(2.5)  # at least two more allocation runs under full load
        metrics = await asyncio.to_thread(services.metrics)
        result["allocation_run_ms"] = {
            "last": metrics.get(ALLOCATION_RUN),
            **{name: metrics.get(f"{ALLOCATION_RUN}/{name}") for name in ALLOCATION_STATISTICS},
        }
        result["master_metrics"] = {
            key: metrics.get(key)
            for key in (
                "master/slaves_active",
                "master/tasks_running",
                "master/frameworks_active",
                "master/offers_sent",
                "allocator/mesos/allocation_runs",
            )
        }
        result["master_memory_kib"] = services.master_memory()
        result["load_average_1min"] = os.getloadavg()[0]
    finally:
        await framework.stop()
        if framework_run is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(framework_run, 10)
        simulator = await fleet.stop()
    result["simulator"] = {
        "agent_processes": fleet.processes,
        "agent_stream_failures": simulator.get("stream_failures"),
        "agent_call_failures": simulator.get("call_failures"),
        "framework_call_failures": framework.call_failures,
        "pongs_sent": simulator.get("pongs_sent"),
        "pongs_skipped": simulator.get("pongs_skipped"),
    }
    return result


def machine() -> str:
    memory_kib = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor(),
    )  # fmt: skip
    return (
        f"{os.cpu_count()} cores ({model}), {memory_kib / 1024 / 1024:.1f} GiB memory, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


HISTORY_HEADING = "## History"
LB_SECTION_BEGIN = "<!-- bench-lb: begin"
LB_SECTION_END = "<!-- bench-lb: end -->"


def write_results(results: list[dict], host: str) -> None:
    """Write docs/benchmarks.md; its hand-written `## History` section (earlier results) is kept."""

    def number(value, digits: int = 0) -> str:
        return "n/a" if value is None else f"{value:,.{digits}f}"

    rows = [
        "| agents | tasks | tasks per ACCEPT | registrations/s | allocation run max / p99 / p50 (ms) | offers/s "
        "| tasks to RUNNING/s | master CPU per task (ms) | master RSS / peak (MiB) | load average |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        if "error" in result:
            rows.append(f"| {result['agents']:,} | {result['tasks']:,} | failed: {result['error']} |")
            continue
        memory = result.get("master_memory_kib", {})
        allocation = result.get("allocation_run_ms") or {}
        rows.append(
            f"| {result['agents']:,} | {result['tasks']:,} | {result['tasks_per_accept']} "
            f"| {number(result.get('registrations_per_second'))} "
            f"| {number(allocation.get('max'), 0)} / {number(allocation.get('p99'), 1)} / "
            f"{number(allocation.get('p50'), 2)} | {number(result.get('offers_per_second'))} "
            f"| {number(result.get('tasks_running_per_second'))} | {number(result.get('master_cpu_ms_per_task'), 2)} "
            f"| {number(memory.get('VmRSS', 0) / 1024)} / {number(memory.get('VmHWM', 0) / 1024)} "
            f"| {number(result.get('load_average_1min'), 1)} |"
        )
    history = ""
    if RESULTS.exists():
        previous = RESULTS.read_text()
        if HISTORY_HEADING in previous:
            history = "\n" + previous[previous.index(HISTORY_HEADING) :].rstrip() + "\n"
        # The load balancer's section belongs to `make bench-lb` (bench/lb_load.py): kept, before the history.
        if LB_SECTION_BEGIN in previous and LB_SECTION_END in previous and LB_SECTION_BEGIN not in history:
            start = previous.index(LB_SECTION_BEGIN)
            end = previous.index(LB_SECTION_END, start) + len(LB_SECTION_END)
            history = "\n" + previous[start:end] + "\n" + history
    text = f"""# Benchmarks

Written by `make bench` (bench/run.py) on {time.strftime("%Y-%m-%d %H:%M %Z")}.

Machine: {host}.

## What is measured

Each row: a private ZooKeeper (the master registers its agents in it, as in production) and a real
`mesolite master` with default flags (1 s allocation interval, 15 s agent pings); N simulated agents
(bench/simulator.py, {AGENTS_PER_PROCESS:,} per worker process, `{AGENT_RESOURCES}` each) that speak the agent
protocol of docs/architecture.md over real HTTP — one event stream per agent, every call a real POST — answer
PING with PONG (skipped when they called within the ping interval, as the protocol allows) and answer RUN_TASK
at once with TASK_RUNNING (one `STATUS_UPDATES` call per agent per 20 ms); one framework (the v1 scheduler API
through mesolite.scheduler.client, in its own process) that launches the tasks, up to `tasks per ACCEPT` on each
offer (one ACCEPT per offer: v1 ACCEPT may only combine offers of one agent), declines what it does not need and
acknowledges every update with its own ACKNOWLEDGE call. Simulator, framework, ZooKeeper and master all share
the machine's cores (and whatever else runs on it: see the load average).

{chr(10).join(rows)}

- *registrations/s*: N divided by the time from starting the simulator until every agent received REGISTERED
  (at most 200 registrations in flight).
- *allocation run*: the master's timer `allocator/mesos/allocation_run_ms` (/metrics/snapshot; Mesos's name)
  over the whole run: worst, 99th percentile and median of every allocation cycle. The worst is the first cycle
  after the framework subscribes, which offers every agent at once.
- *offers/s*: N divided by the time from SUBSCRIBED until the framework held an offer from every agent.
- *tasks to RUNNING/s*: tasks divided by the time from the first ACCEPT to the last TASK_RUNNING the framework
  received (ACCEPT, RUN_TASK down the agent's stream, the agent's status update call, UPDATE to the framework;
  the framework's acknowledgements run alongside).
- *master CPU per task*: CPU time (user + system) of the master process from SUBSCRIBE to the last TASK_RUNNING,
  divided by the tasks: what a task costs the master, less dependent on the rest of the machine than the rate
  (it still grows under contention, and it includes the master's steady work meanwhile: PINGs and PONGs of
  every agent, registry writes, the first allocation cycle).
- *master RSS*: resident memory of the master at the end, and its peak (/proc/<pid>/status).
- *load average*: the machine's 1-minute load average at the end of the row (2 cores: above 2, other work
  competed for the CPU).

Target (issue 4): 10,000 agents with a sub-second allocation cycle and at least 1,000 task launches per second.

Raw results:

```json
{json.dumps(results, indent=2)}
```
{history}"""
    RESULTS.write_text(text)


def parse_scenario(text: str) -> tuple[int, int]:
    agents, _, tasks = text.partition(":")
    try:
        return int(agents), int(tasks)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not AGENTS:TASKS (e.g. 10000:50000)") from None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "scenarios",
        type=parse_scenario,
        nargs="*",
        default=[(1000, 10000), (10000, 10000), (10000, 50000)],
        metavar="AGENTS:TASKS",
        help="what to run (default: 1000:10000 10000:10000 10000:50000)",
    )
    parser.add_argument(
        "--agent-processes",
        type=int,
        default=0,
        help=f"worker processes for the simulated agents (default: one per {AGENTS_PER_PROCESS:,} agents)",
    )
    parser.add_argument("--master-flag", action="append", default=[], help="extra flag for the master")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directories (logs)")
    parser.add_argument("--no-write", action="store_true", help="print results only; leave docs/benchmarks.md")
    options = parser.parse_args()
    if not shutil.which("java"):
        print("bench: java (Debian's zookeeper package) is needed", file=sys.stderr)
        return 1
    # ZooKeeper and the master run in sessions of their own: a SIGTERM (e.g. from `timeout`) must still reach
    # the clean-up below rather than leave them running.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    limit = raise_file_limit()
    print(f"bench: file descriptor limit {limit}", flush=True)
    results = []
    for agent_count, task_count in options.scenarios:
        directory = Path(tempfile.mkdtemp(prefix=f"mesolite-bench-{agent_count}-"))
        services = Services(directory, options.master_flag)
        print(f"bench: {agent_count:,} agents, {task_count:,} tasks (logs in {directory})", flush=True)
        try:
            services.start()
            processes = options.agent_processes or -(-agent_count // AGENTS_PER_PROCESS)
            result = asyncio.run(scenario(services, agent_count, task_count, processes))
        except Exception as error:  # a failed row is reported; the others still run
            result = {"agents": agent_count, "tasks": task_count, "error": f"{type(error).__name__}: {error}"}
            options.keep = True
        finally:
            services.stop()
        print(json.dumps(result, indent=2), flush=True)
        results.append(result)
        if not options.keep:
            shutil.rmtree(directory, ignore_errors=True)
    if not options.no_write:
        write_results(results, machine())
        print(f"bench: wrote {RESULTS}")
    return 0 if all("error" not in result for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
