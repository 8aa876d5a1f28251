"""`mesolite lb` as a real process: it serves, stops on SIGTERM, and with `--haproxy_keep_running` a restart of the
LB leaves HAProxy serving and the next LB process adopts it (through the master socket)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from lb_testing import fresh_connections, lb_arguments, marathon_app, requires_haproxy, until_served

from harness.processes import free_port
from mesolite.lb.haproxy import HAProxy

pytestmark = requires_haproxy


async def show_proc(run_directory: Path):
    """The master's `show proc`, retried: the master re-executes itself after starting and refuses meanwhile."""
    haproxy = HAProxy("haproxy", run_directory / "haproxy.cfg", run_directory)
    return await haproxy.show_proc()


async def start_lb(arguments: list[str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as output:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from mesolite.cli import main; raise SystemExit(main())",
            "lb",
            *arguments,
            stdout=output,
            stderr=output,
        )


async def stop(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), 30)


async def test_the_lb_process_restarts_while_haproxy_keeps_serving(marathon, backends):
    run_directory = Path(tempfile.mkdtemp(prefix="lb-", dir="/tmp"))
    log = run_directory / "lb.log"
    service_port = free_port()
    url = f"http://127.0.0.1:{service_port}/"
    marathon.put_app(marathon_app("/web", service_port, {"HAPROXY_GROUP": "external"}))
    first, second = await backends("first"), await backends("second")
    marathon.run_task("/web", first.port)
    arguments = [*lb_arguments(marathon, run_directory, reload_interval="0.2secs"), "--haproxy_keep_running"]
    master_pid = None
    started: list[asyncio.subprocess.Process] = []
    try:
        async with fresh_connections() as session:
            lb = await start_lb(arguments, log)
            started.append(lb)
            await until_served(session, url, {"first"})
            master_pid = (await show_proc(run_directory)).master_pid
            assert await stop(lb) == 0
            await until_served(session, url, {"first"})  # HAProxy outlives the LB process

            lb = await start_lb(arguments, log)
            started.append(lb)
            marathon.run_task("/web", second.port)
            await until_served(session, url, {"first", "second"})
            processes = await show_proc(run_directory)
            assert processes.master_pid == master_pid  # adopted, not started anew
            assert "adopted the running HAProxy master" in log.read_text()
            assert await stop(lb) == 0
    except BaseException:
        print(log.read_text() if log.exists() else "(no LB log)")
        raise
    finally:
        for process in started:
            if process.returncode is None:
                process.kill()
                await process.wait()
        if master_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(master_pid, signal.SIGTERM)
        shutil.rmtree(run_directory, ignore_errors=True)


def test_help_lists_the_marathon_lb_flags():
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", "from mesolite.cli import main; raise SystemExit(main())", "lb", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for flag in ("--marathon", "--group", "--haproxy_config", "--[no-]strict_mode", "--[no-]expose_ungrouped"):
        assert flag in result.stdout
