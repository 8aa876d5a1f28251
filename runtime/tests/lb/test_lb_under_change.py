"""Requests through `mesolite lb` and real HAProxy while tasks die before the LB knows (`make bench-lb` found these).

Marathon's kill and the task's SIGTERM race the LB: nothing guarantees that HAProxy has taken a task out of its
backend before the task's process stops listening (or closes a kept-alive connection without answering). Found
by bench/lb_load.py: scaling 5 -> 1 failed requests with 503 (every retry of a request went to servers already
gone) and rolls and kills with 502 (a server closed the connection without an answer). HAProxy must send such a
request to another server instead. The benchmark also saw every restart of `mesolite lb` reload the HAProxy it
adopted although nothing had changed. Marathon is the stand-in of lb_testing; the servers are real.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from lb_testing import (
    StandInMarathon,
    answers,
    fresh_connections,
    lb_arguments,
    marathon_app,
    requires_haproxy,
    running_lb,
    until_served,
)

from harness.processes import free_port
from harness.waiting import eventually
from mesolite.lb.service import FLAGS, LoadBalancerService

pytestmark = requires_haproxy

HTTP_CHECK = [{"protocol": "HTTP", "path": "/health", "portIndex": 0, "intervalSeconds": 2, "timeoutSeconds": 1}]
REQUESTS = 60


@contextlib.asynccontextmanager
async def hanging_up_server() -> AsyncIterator[int]:
    """A server that reads a request and closes the connection without answering (a process exiting)."""

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def served_app(marathon: StandInMarathon, host_ports: list[int]) -> int:
    """An http-mode app (it has an HTTP health check) with healthy tasks on `host_ports`; its service port."""
    service_port = free_port()
    marathon.put_app(marathon_app("/web", service_port, {"HAPROXY_GROUP": "external"}, HTTP_CHECK))
    for port in host_ports:
        marathon.run_task("/web", port, healthy=True)
    return service_port


async def test_requests_reach_the_live_task_while_most_tasks_stopped_listening(marathon, backends):
    live = await backends("live")
    # Tasks whose processes already stopped listening; the LB has not heard of their end yet.
    gone = [free_port() for _ in range(4)]
    service_port = await served_app(marathon, [live.port, *gone])
    async with running_lb(marathon), fresh_connections() as session:
        url = f"http://127.0.0.1:{service_port}/"
        await wait_until_answered(session, url)
        bodies = await answers(session, url, REQUESTS)
    assert bodies == ["live"] * REQUESTS


async def test_a_request_a_dying_task_hangs_up_on_goes_to_another_task(marathon, backends):
    live = await backends("live")
    async with hanging_up_server() as dying_port:
        service_port = await served_app(marathon, [live.port, dying_port])
        async with running_lb(marathon), fresh_connections() as session:
            url = f"http://127.0.0.1:{service_port}/"
            await wait_until_answered(session, url)
            bodies = await answers(session, url, REQUESTS)
    assert bodies == ["live"] * REQUESTS


async def wait_until_answered(session, url: str, within: float = 20.0) -> None:
    """Until HAProxy serves the app's frontend at all (some answer from the live task)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while "live" not in await answers(session, url, 1):
        assert loop.time() < deadline, f"{url} never answered through HAProxy"
        await asyncio.sleep(0.2)


async def test_a_restart_of_the_lb_alone_does_not_reload_haproxy(marathon, backends, caplog):
    caplog.set_level(logging.INFO, logger="mesolite.lb")
    first, second, third = await backends("first"), await backends("second"), await backends("third")
    service_port = free_port()
    marathon.put_app(marathon_app("/web", service_port, {"HAPROXY_GROUP": "external"}))
    leaving = marathon.run_task("/web", first.port)
    run_directory = Path(tempfile.mkdtemp(prefix="lb-", dir="/tmp"))  # short: unix socket paths are limited
    arguments = [*lb_arguments(marathon, run_directory), "--drain_timeout=1secs", "--server_slots=4"]
    before = LoadBalancerService(FLAGS.parse([*arguments, "--haproxy_keep_running"], environ={}))
    after = LoadBalancerService(FLAGS.parse(arguments, environ={}))
    url = f"http://127.0.0.1:{service_port}/"
    try:
        async with fresh_connections() as session:
            stopped = asyncio.Event()
            running = asyncio.create_task(before.run(stopped))
            await until_served(session, url, {"first"})
            # Changes through the runtime API after the last reload: HAProxy's servers now differ from its file
            # (a slot `disabled` there serves, another one drains).
            marathon.run_task("/web", second.port)
            await until_served(session, url, {"first", "second"})
            marathon.start_killing(leaving)
            await until_served(session, url, {"second"})
            stopped.set()
            await asyncio.wait_for(running, 30)
            reloads = (await before.haproxy.show_proc()).reloads

            stopped = asyncio.Event()
            running = asyncio.create_task(after.run(stopped))
            await until_served(session, url, {"second"})
            await eventually(lambda: after.balancer.applied is not None, what="the new LB to take HAProxy over")
            # The adopted slots are HAProxy's: the serving task keeps its slot, it is not placed a second time.
            messages = [record.getMessage() for record in caplog.records]
            placed = [message for message in messages if f":{second.port} ready" in message]
            assert len(placed) == 1, placed
            marathon.run_task("/web", third.port)
            await until_served(session, url, {"second", "third"})
            assert (await after.haproxy.show_proc()).reloads == reloads
            assert after.haproxy.adopted_master is not None  # the same HAProxy, adopted
            stopped.set()
            await asyncio.wait_for(running, 30)
    finally:
        await before.haproxy.stop()
        await after.haproxy.stop()
        shutil.rmtree(run_directory, ignore_errors=True)
