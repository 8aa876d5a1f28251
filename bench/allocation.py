"""Allocation cycles in-process: how long a cycle takes at N agents, and how long it blocks the event loop.

Builds a `Master` without HTTP (no ZooKeeper, no sockets): N registered agents of equal size, F connected
frameworks whose event streams encode every event (as the real ones do) and throw the bytes away. Then, for
each N, it runs the master's allocation cycle in these situations and reports wall time, CPU time and the
event loop's worst lateness meanwhile (a probe task sleeps 1 ms in a loop and records how late it wakes):

- first:    the frameworks just subscribed, every agent is free: N offers go out;
- reoffer:  every offer is declined (no filter): every agent is offered again;
- one:      one offer declined: one agent changed;
- idle:     nothing changed.

Issue 16's targets: the loop never blocked > 50 ms by allocation; a full cycle at 50,000 agents <= 0.5 s.
Usage: `python bench/allocation.py` (1,000 / 10,000 / 50,000 agents, one framework), `--agents 2000 --frameworks 3`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import json
import time

from mesolite.ids import IdGenerator
from mesolite.master.agents import RegisteredAgent
from mesolite.master.frameworks import Framework
from mesolite.master.master import Master, MasterSettings
from mesolite.protocol import recordio
from mesolite.protocol.v1 import encode_json
from mesolite.resources import parse_resources

AGENT_RESOURCES = "cpus:8;mem:16384;disk:100000;ports:[31000-32000]"
PROBE_INTERVAL = 0.001


class DiscardingStream:
    """An event stream that encodes each event as the real one does, then drops it."""

    closed = False
    bytes_sent = 0
    events_sent = 0

    def send(self, event: dict) -> None:
        self.send_encoded(encode_json(event))

    def send_encoded(self, record: bytes) -> None:
        self.bytes_sent += len(recordio.encode(record))
        self.events_sent += 1


def build_master(agent_count: int, framework_count: int) -> Master:
    master = Master({"id": "bench", "hostname": "localhost"}, IdGenerator("bench"), MasterSettings())
    total = parse_resources(AGENT_RESOURCES)
    for index in range(agent_count):
        agent_id = f"bench-S{index}"
        info = {"id": {"value": agent_id}, "hostname": f"agent-{index}", "port": 5051}
        master.agents[agent_id] = RegisteredAgent(agent_id, info, total)
        master.allocator.add_agent(agent_id, total)
    for index in range(framework_count):
        framework_id = f"bench-{index:04d}"
        info = {"id": {"value": framework_id}, "name": f"bench-{index}", "user": "bench", "role": "*"}
        framework = Framework(framework_id, info, stream=DiscardingStream())  # type: ignore[arg-type]
        master.frameworks[framework_id] = framework
        master.allocator.add_framework(framework_id, framework.roles)
    return master


async def run_cycle(master: Master) -> int:
    """One cycle, the way the allocation loop runs it (awaited when the master slices its cycles)."""
    result = master.run_allocation()
    if inspect.isawaitable(result):
        result = await result
    return result


async def measure(master: Master, name: str) -> dict:
    """One cycle's wall and CPU time, and the longest the loop was blocked meanwhile, on the wall clock and
    in CPU time (the CPU the process used between two wake-ups of the probe: on a loaded machine the wall
    clock also counts the time the OS ran other processes, which no change to the master can remove)."""
    worst_lateness = 0.0
    worst_cpu = 0.0
    stop = asyncio.Event()

    async def probe() -> None:
        nonlocal worst_lateness, worst_cpu
        while not stop.is_set():
            before, before_cpu = time.perf_counter(), time.process_time()
            await asyncio.sleep(PROBE_INTERVAL)
            worst_lateness = max(worst_lateness, time.perf_counter() - before - PROBE_INTERVAL)
            worst_cpu = max(worst_cpu, time.process_time() - before_cpu)

    prober = asyncio.create_task(probe())
    await asyncio.sleep(0.01)  # the probe is sleeping when the cycle starts
    worst_lateness = worst_cpu = 0.0
    offers_before = len(master.offers)
    wall, cpu = time.perf_counter(), time.process_time()
    await run_cycle(master)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await asyncio.sleep(0.005)
    stop.set()
    await prober
    return {
        "case": name,
        "wall_s": round(wall, 4),
        "cpu_s": round(cpu, 4),
        "loop_blocked_max_ms": round(worst_lateness * 1000, 1),
        "loop_blocked_max_cpu_ms": round(worst_cpu * 1000, 1),
        "offers_made": len(master.offers) - offers_before,
    }


def decline_all(master: Master, limit: int | None = None) -> None:
    """Give offers back without a filter, as a DECLINE with refuse_seconds 0 does."""
    for offer in list(master.offers.values())[:limit]:
        master._drop_offer(offer)
        master.allocator.recover(offer.framework_id, offer.role, offer.agent_id, offer.resources, 0, time.monotonic())


async def bench(agent_count: int, framework_count: int, collect: bool) -> list[dict]:
    master = build_master(agent_count, framework_count)
    gc.collect()
    gc.freeze()  # as the master's garbage-collection loop does with its long-lived state
    if not collect:
        gc.disable()
    results = [await measure(master, "first")]
    decline_all(master)
    results.append(await measure(master, "reoffer"))
    decline_all(master, limit=1)
    results.append(await measure(master, "one"))
    results.append(await measure(master, "idle"))
    gc.enable()
    gc.unfreeze()
    for result in results:
        result["agents"] = agent_count
        result["frameworks"] = framework_count
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, nargs="+", default=[1000, 10000, 50000], help="agent counts")
    parser.add_argument("--frameworks", type=int, default=1, help="connected frameworks (default 1)")
    parser.add_argument(
        "--no-gc",
        action="store_true",
        help="cyclic garbage collector off while measuring (what allocation alone costs: with it on, a full "
        "collection of the objects a big cycle creates may fall inside the cycle)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per measurement")
    args = parser.parse_args()
    print(
        f"{'agents':>7} {'fw':>3} {'case':<8} {'wall s':>8} {'cpu s':>8} {'blocked max ms':>15} "
        f"{'(of it CPU ms)':>15} {'offers':>7}"
    )
    for agent_count in args.agents:
        for result in asyncio.run(bench(agent_count, args.frameworks, not args.no_gc)):
            if args.json:
                print(json.dumps(result))
            else:
                print(
                    f"{result['agents']:>7} {result['frameworks']:>3} {result['case']:<8} {result['wall_s']:>8.3f} "
                    f"{result['cpu_s']:>8.3f} {result['loop_blocked_max_ms']:>15.1f} "
                    f"{result['loop_blocked_max_cpu_ms']:>15.1f} {result['offers_made']:>7}"
                )


if __name__ == "__main__":
    main()
