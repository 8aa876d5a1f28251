"""Marathon at scale: many apps, and one app with many instances, against simulated agents.

Starts a private ZooKeeper, a real `mesolite master` and a real `mesolite marathon` (state in that ZooKeeper),
and a fleet of simulated agents (bench/simulator.py: they answer every RUN_TASK with TASK_RUNNING). Then it
measures:

- creating N apps (instances 0, one POST /v2/apps each, a few in flight): total time and apps/s;
- GET /v2/apps (default embeds: counts and deployments) at N apps, p50/p99 over a number of requests;
- scaling one app 0 -> M instances: time from the PATCH until GET /v2/apps/{id} reports M tasks running,
  and Marathon's CPU time meanwhile;
- GET /v2/apps again with the M tasks present (each app's view used to scan every task: apps x tasks);
- Marathon's resident memory (RSS and peak) at the end.

Defaults (N = M = 2,000) run in a few minutes; `--apps 10000 --instances 10000` is issue 16's target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

# bench/ is on sys.path: `python bench/marathon_scale.py` puts the script's directory first.
from run import RESULTS, Services, free_port, http_json, machine, wait_until
from simulator import FleetProcesses, raise_file_limit

HEADING = "## Marathon at scale"
APP_RESOURCES = {"cpus": 0.01, "mem": 1, "disk": 0}


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def app_definition(app_id: str, instances: int) -> dict:
    return {
        "id": app_id,
        "cmd": "sleep 3600",
        "instances": instances,
        **APP_RESOURCES,
        "portDefinitions": [],
        "backoffSeconds": 1,
    }


async def create_apps(session: aiohttp.ClientSession, base: str, count: int, concurrency: int) -> float:
    """POST /v2/apps `count` times (at most `concurrency` in flight); the seconds it took."""
    next_index = iter(range(count))

    async def worker() -> None:
        for index in next_index:
            body = app_definition(f"/bench/app-{index:05d}", 0)
            async with session.post(f"{base}/v2/apps", json=body) as response:
                if response.status != 201:
                    raise RuntimeError(f"POST /v2/apps answered {response.status}: {await response.text()}")

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.monotonic() - started


async def list_apps_latency(session: aiohttp.ClientSession, base: str, requests: int) -> dict[str, float]:
    """GET /v2/apps once (the first answer after the changes: Marathon encodes every app's view again), then
    `requests` times, one after the other: milliseconds of the first, p50 / p99 / max of the others."""
    timings = []
    app_count = 0
    for _ in range(requests + 1):
        started = time.perf_counter()
        async with session.get(f"{base}/v2/apps") as response:
            body = await response.read()
        timings.append((time.perf_counter() - started) * 1000)
        app_count = len(json.loads(body)["apps"])
    first, timings = timings[0], timings[1:]
    return {
        "apps": app_count,
        "first_ms": first,
        "p50_ms": statistics.median(timings),
        "p99_ms": percentile(timings, 0.99),
        "max_ms": max(timings),
        "bytes": len(body),
    }


async def scale_up(session: aiohttp.ClientSession, base: str, instances: int) -> float:
    """Create /bench/scaled with 0 instances, PATCH it to `instances`; seconds until all of them run."""
    app_id = "/bench/scaled"
    async with session.post(f"{base}/v2/apps", json=app_definition(app_id, 0)) as response:
        assert response.status == 201, await response.text()
    await no_deployments(session, base)
    started = time.monotonic()
    async with session.patch(f"{base}/v2/apps{app_id}", json={"instances": instances}) as response:
        assert response.status == 200, await response.text()
    while True:
        # The list filtered to this app carries its counts without its tasks (cheap for Marathon to answer).
        async with session.get(f"{base}/v2/apps", params={"id": app_id}) as response:
            (app,) = [a for a in (await response.json())["apps"] if a["id"] == app_id]
        if app["tasksRunning"] >= instances:
            return time.monotonic() - started
        await asyncio.sleep(0.2)


async def no_deployments(session: aiohttp.ClientSession, base: str) -> None:
    """Wait until no deployment runs (the caller bounds the wait)."""
    while True:
        async with session.get(f"{base}/v2/deployments") as response:
            if not await response.json():
                return
        await asyncio.sleep(0.2)


async def measure(services: Services, marathon_port: int, marathon_pid: int, options) -> dict:
    base = f"http://127.0.0.1:{marathon_port}"
    result: dict = {"apps": options.apps, "instances": options.instances, "agents": options.agents}
    fleet = FleetProcesses(f"127.0.0.1:{services.master_port}", options.agents, 1)
    fleet.start()
    try:
        async with asyncio.timeout(300):
            await fleet.registered()
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            result["create_seconds"] = await create_apps(session, base, options.apps, options.concurrency)
            result["apps_created_per_second"] = options.apps / result["create_seconds"]
            async with asyncio.timeout(300):
                await no_deployments(session, base)
            result["list_apps_without_tasks"] = await list_apps_latency(session, base, options.requests)
            cpu_before = process_cpu_seconds(marathon_pid)
            async with asyncio.timeout(options.scale_timeout):
                result["scale_seconds"] = await scale_up(session, base, options.instances)
            result["marathon_cpu_seconds_scaling"] = process_cpu_seconds(marathon_pid) - cpu_before
            async with asyncio.timeout(120):
                await no_deployments(session, base)
            result["list_apps_with_tasks"] = await list_apps_latency(session, base, options.requests)
        result["marathon_memory_kib"] = process_memory_kib(marathon_pid)
        result["load_average_1min"] = os.getloadavg()[0]
    finally:
        await fleet.stop()
    return result


def start_marathon(services: Services) -> tuple[int, int]:
    """A real `mesolite marathon` against the services' master; (its HTTP port, its pid) once it leads."""
    port = free_port()
    config = (services.directory / "zoo.cfg").read_text()
    zookeeper = next(line.split("=", 1)[1] for line in config.splitlines() if line.startswith("clientPort="))
    process = services._spawn(
        "marathon",
        [sys.executable, "-m", "mesolite.cli", "marathon", f"--master=127.0.0.1:{services.master_port}",
         f"--zk=zk://127.0.0.1:{zookeeper}/marathon", f"--http_port={port}", "--hostname=127.0.0.1",
         "--http_address=127.0.0.1", "--logging_level=warning"],
    )  # fmt: skip
    wait_until(lambda: http_json(f"http://127.0.0.1:{port}/v2/info") is not None, 60, "Marathon to lead")
    wait_until(lambda: (http_json(f"http://127.0.0.1:{port}/v2/info") or {}).get("frameworkId"), 60, "subscription")
    return port, process.pid


def table(result: dict) -> str:
    if "error" in result:
        return f"| {result['apps']:,} | {result['instances']:,} | failed: {result['error']} |"
    without, with_tasks = result["list_apps_without_tasks"], result["list_apps_with_tasks"]
    memory = result["marathon_memory_kib"]
    return "\n".join(
        [
            "| apps | create apps (s) | apps/s | GET /v2/apps first; p50 / p99 (ms) | instances "
            "| scale 0 → M until running (s) | Marathon CPU while scaling (s) "
            "| GET /v2/apps with M tasks first; p50 / p99 (ms) "
            "| Marathon RSS / peak (MiB) | load average |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {result['apps']:,} | {result['create_seconds']:.1f} | {result['apps_created_per_second']:,.0f} "
            f"| {without['first_ms']:.0f}; {without['p50_ms']:.1f} / {without['p99_ms']:.1f} | {result['instances']:,} "
            f"| {result['scale_seconds']:.1f} | {result['marathon_cpu_seconds_scaling']:.1f} "
            f"| {with_tasks['first_ms']:.0f}; {with_tasks['p50_ms']:.1f} / {with_tasks['p99_ms']:.1f} "
            f"| {memory.get('VmRSS', 0) / 1024:,.0f} / {memory.get('VmHWM', 0) / 1024:,.0f} "
            f"| {result['load_average_1min']:.1f} |",
        ]
    )


def write_section(markdown: str, result: dict) -> None:
    """Replace (or append) this benchmark's own section of docs/benchmarks.md; the other sections stay."""
    section = f"""{HEADING}

Written by `bench/marathon_scale.py` on {time.strftime("%Y-%m-%d %H:%M %Z")}; machine: {machine()}.
A private ZooKeeper, a real master and a real Marathon, {result["agents"]:,} simulated agents (bench/simulator.py)
that answer RUN_TASK with TASK_RUNNING. Apps are created one POST at a time (a few in flight) with 0 instances;
GET /v2/apps carries its default embeds (counts, deployments), timed once right after the changes ("first") and
then over repeated requests; the scaled app is one more app patched from 0 to M
instances ({APP_RESOURCES["cpus"]} cpus, {APP_RESOURCES["mem"]} MiB each), timed until its tasksRunning is M.

{markdown}
"""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n"
    if HEADING in text:
        start = text.index(HEADING)
        following = text.find("\n## ", start + len(HEADING))
        text = text[:start] + section + (text[following + 1 :] if following != -1 else "")
    else:
        text = text.rstrip() + "\n\n" + section
    RESULTS.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=2000, help="apps created (default 2,000)")
    parser.add_argument("--instances", type=int, default=2000, help="instances of the scaled app (default 2,000)")
    parser.add_argument("--agents", type=int, default=100, help="simulated agents (default 100)")
    parser.add_argument("--concurrency", type=int, default=8, help="app creations in flight (default 8)")
    parser.add_argument("--requests", type=int, default=100, help="GET /v2/apps requests per measurement")
    parser.add_argument("--scale-timeout", type=float, default=600.0, help="seconds the scale-up may take")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs)")
    parser.add_argument("--write", action="store_true", help=f"write the table into {RESULTS} ({HEADING!r})")
    options = parser.parse_args()
    if not shutil.which("java"):
        print("bench: java (Debian's zookeeper package) is needed", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    raise_file_limit()
    directory = Path(tempfile.mkdtemp(prefix="mesolite-bench-marathon-"))
    services = Services(directory, [])
    print(f"bench: {options.apps:,} apps, {options.instances:,} instances (logs in {directory})", flush=True)
    try:
        services.start()
        marathon_port, marathon_pid = start_marathon(services)
        result = asyncio.run(measure(services, marathon_port, marathon_pid, options))
    except Exception as error:
        result = {"apps": options.apps, "instances": options.instances, "error": f"{type(error).__name__}: {error}"}
        options.keep = True
    finally:
        services.stop()
    print(json.dumps(result, indent=2), flush=True)
    markdown = table(result)
    print(markdown)
    if options.write and "error" not in result:
        write_section(markdown, result)
        print(f"bench: wrote {RESULTS} ({HEADING})")
    if not options.keep:
        shutil.rmtree(directory, ignore_errors=True)
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
