"""`mesolite executor --run-dir <meta run dir>`: the detached supervisor of one task.

The agent starts it; it detaches at once (double fork in a new session, stdin from /dev/null), so
the task neither dies nor restarts with the agent. It reads `task.info`, fetches the task's URIs
into the sandbox (`fetcher.py`), has the named containerizer run the task, appends what happens to
`events.jsonl` (TASK_STARTING, the containerizer's TASK_RUNNING, the terminal state), and exits
after the terminal event. SIGTERM means "kill the task": the grace period comes from
`kill.request`, which the agent writes before it signals.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from mesolite.agent import fetcher, health_checks, processes
from mesolite.agent.checkpoint import read_json, read_json_lines, write_atomically
from mesolite.agent.containerizers import load_containerizer
from mesolite.agent.containerizers.base import AgentOptions, ExecutorRun, Termination
from mesolite.agent.containerizers.mesos import task_user
from mesolite.protocol.v1 import is_terminal

log = logging.getLogger("mesolite.executor")

# How long the detaching parent waits for the executor to write its pid file.
DETACH_TIMEOUT_SECONDS = 30.0
# When the agent signals without a kill.request (it should not), the kill policy's Mesos default.
DEFAULT_KILL_GRACE_SECONDS = 3.0


def load_run(run_dir: Path) -> ExecutorRun:
    info = read_json(run_dir / "task.info")
    return ExecutorRun(
        run_dir=run_dir,
        task=info["task"],
        framework=info["framework"],
        containerizer=info["containerizer"],
        sandbox=Path(info["sandbox"]),
        agent_id=info["agent_id"],
        options=AgentOptions.from_json(info.get("agent_options") or {}),
    )


def kill_grace_period(run_dir: Path) -> float:
    try:
        return float(read_json(run_dir / "kill.request")["grace_period_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_KILL_GRACE_SECONDS


def task_kill_grace_period(task: dict) -> float:
    """The grace period of a kill the executor decides on (a failed health check): the task's kill policy."""
    nanoseconds = ((task.get("kill_policy") or {}).get("grace_period") or {}).get("nanoseconds")
    return DEFAULT_KILL_GRACE_SECONDS if nanoseconds is None else max(0.0, int(nanoseconds) / 1e9)


def start_fetching(run: ExecutorRun) -> asyncio.Task | None:
    """Fetch the task's URIs into its sandbox, as the task's user (Mesos does so for every containerizer);
    None when there is nothing to fetch."""
    uris = (run.task.get("command") or {}).get("uris") or []
    if not uris:
        return None
    user = task_user(run.task, run.framework) if run.options.switch_user else None
    return asyncio.create_task(fetcher.fetch(uris, run.sandbox, user))


async def fetch_outcome(fetching: asyncio.Task) -> Termination | None:
    """None once the fetch succeeded, else how the task ends: TASK_FAILED as Mesos reports a failed fetch,
    or TASK_KILLED when a kill cancelled the fetch."""
    await asyncio.wait([fetching])
    if fetching.cancelled():
        return Termination("TASK_KILLED", "Killed while fetching URIs")
    error = fetching.exception()
    if error is None:
        return None
    message = str(error)
    if not isinstance(error, fetcher.FetchError):  # the fetcher could not even start
        log.error("fetching the URIs failed", exc_info=error)
        message = f"Failed to fetch URIs: {error}"
    return Termination("TASK_FAILED", message, reason="REASON_CONTAINER_LAUNCH_FAILED")


async def supervise(run: ExecutorRun) -> str:
    """Run the task to its end and report every step; returns the terminal state."""
    events = [event for event, _end in read_json_lines(run.events_path)]
    if any(is_terminal(event.get("state", "")) for event in events):
        return events[-1]["state"]  # started twice by mistake: the task already ended
    containerizer = load_containerizer(run.containerizer, run.options)
    if not events:
        run.report("TASK_STARTING")
    loop = asyncio.get_running_loop()
    kills: list[asyncio.Task] = []
    fetching: asyncio.Task | None = None

    def on_kill_signal() -> None:
        if run.kill_requested:
            return
        run.kill_requested = True
        grace = kill_grace_period(run.run_dir)
        log.info("kill requested: stopping task %s with a grace period of %.1fs", run.task_id, grace)
        if fetching is not None:
            fetching.cancel()
        kills.append(asyncio.create_task(containerizer.kill(run, grace)))

    def on_unhealthy(message: str) -> None:
        if run.kill_requested:
            return
        run.kill_requested = True
        grace = task_kill_grace_period(run.task)
        log.info("%s: stopping task %s with a grace period of %.1fs", message, run.task_id, grace)
        kills.append(asyncio.create_task(containerizer.kill(run, grace)))

    checker = health_checks.health_checker(run, on_unhealthy, containerizer)
    running = [event for event in events if event.get("state") == "TASK_RUNNING" and "healthy" not in event]
    if checker is not None and running:
        checker.observe("TASK_RUNNING", running[-1])  # a new executor of a run whose container still runs
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, on_kill_signal)
    if (run.run_dir / "kill.request").exists():
        # Asked before this executor could hear it: the agent was quicker, or an earlier executor of the
        # run died (the agent then starts a new one, which must carry the kill out).
        on_kill_signal()
    termination = None
    fetched_marker = run.run_dir / "fetched"
    # Once per run: a later executor of the run (one that re-attaches to a running container) must not fetch
    # again, but one that replaces an executor that died while fetching must.
    if not fetched_marker.exists() and not run.kill_requested:
        fetching = start_fetching(run)
        if fetching is not None:
            termination = await fetch_outcome(fetching)
        if termination is None:
            write_atomically(fetched_marker, "")
    if termination is None:
        try:
            termination = await containerizer.run(run)
        except Exception as error:
            log.exception("task %s: the %s containerizer failed", run.task_id, run.containerizer)
            termination = Termination(
                "TASK_FAILED", f"Failed to launch container: {error}", reason="REASON_CONTAINER_LAUNCH_FAILED"
            )
    if checker is not None:
        await checker.stop()
    for kill in kills:
        try:
            await kill
        except Exception:
            log.exception("task %s: kill failed", run.task_id)
    state = "TASK_KILLED" if run.kill_requested and termination.state != "TASK_ERROR" else termination.state
    message, reason, healthy = termination.message, termination.reason, None
    if checker is not None and checker.kill_message and state == "TASK_KILLED":
        message, reason, healthy = checker.kill_message, health_checks.HEALTH_REASON, False
    run.report(
        state,
        message=message,
        reason=reason,
        exit_status=termination.exit_status,
        signal=termination.signal,
        healthy=healthy,
    )
    log.info("task %s: %s (%s)", run.task_id, state, termination.message)
    return state


def detach(pid_file: Path) -> None:
    """Fork; the parent waits until the child wrote `pid_file`, then exits 0 (1 if the child did not).

    The parent is the agent's child and is reaped by it at once; the executor (the grandchild) is
    reparented to init, outside the agent's process group and session."""
    ready_read, ready_write = os.pipe()
    child = os.fork()
    if child:
        os.close(ready_write)
        os.set_blocking(ready_read, True)
        signal.alarm(int(DETACH_TIMEOUT_SECONDS))
        written = os.read(ready_read, 1)
        os._exit(0 if written == b"1" else 1)
    os.close(ready_read)
    write_atomically(pid_file, processes.identity_line(os.getpid()))
    os.write(ready_write, b"1")
    os.close(ready_write)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mesolite executor", description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True, type=Path, help="the run's directory under <work_dir>/meta")
    parser.add_argument("--foreground", action="store_true", help="do not detach (for debugging)")
    arguments = parser.parse_args(sys.argv[1:] if argv is None else argv)
    run_dir: Path = arguments.run_dir.resolve()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s executor[%(process)d] %(message)s", stream=sys.stderr
    )
    if not (run_dir / "task.info").is_file():
        print(f"mesolite executor: {run_dir}/task.info does not exist", file=sys.stderr)
        return 2
    pid_file = run_dir / "pids" / "executor.pid"
    if arguments.foreground:
        write_atomically(pid_file, processes.identity_line(os.getpid()))
    else:
        detach(pid_file)
    run = load_run(run_dir)
    log.info("supervising task %s (container %s, %s containerizer)", run.task_id, run.container_id, run.containerizer)
    state = asyncio.run(supervise(run))
    return 0 if state == "TASK_FINISHED" else 1


if __name__ == "__main__":
    sys.exit(main())
