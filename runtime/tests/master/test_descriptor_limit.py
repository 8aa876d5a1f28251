"""The master protects itself at its file-descriptor limit (issue 16).

At ~18,000 agents on a 20,000 limit accept() failed with EMFILE, kazoo could not open its selector, and the master
lost its ZooKeeper session, its leadership and every agent. Here a master runs under a limit of 256 with 64
descriptors in reserve; agents subscribe until it refuses one. The refusal is a 503 with Retry-After (a framework's
SUBSCRIBE too), while the master stays the leader with the same ZooKeeper session (its election znode is still
there, the same one), answers /health and /master/state, keeps serving the agents it admitted, and admits new
agents again once some have gone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import time

import aiohttp
import pytest
from kazoo.client import KazooClient
from master_helpers import EventReader, FakeAgent, get_json

from harness.processes import free_port
from mesolite.master import limits
from mesolite.master.limits import DescriptorBudget, count_open_descriptors, default_reserve
from mesolite.zookeeper.url import parse_zookeeper_url

DESCRIPTOR_LIMIT = 256
RESERVE = 64
SESSION_TIMEOUT = 4.0
# More than the limit: a master without protection runs out of descriptors well before.
MOST_AGENTS = 400
# An admitted agent gets REGISTERED at once; a master that stopped accepting connections never answers.
ANSWER_WITHIN = 10.0


def low_descriptor_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTOR_LIMIT, DESCRIPTOR_LIMIT))


def registration(number: int) -> dict:
    return {
        "type": "REGISTER",
        "agent_info": {
            "hostname": f"agent-{number}.example",
            "port": 5051,
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}],
        },
        "boot_id": "boot",
        "version": "1.11.0",
    }


async def register(session: aiohttp.ClientSession, base_url: str, number: int) -> aiohttp.ClientResponse:
    """POST a REGISTER; a 200's stream is left open (the agent holds its descriptor on the master)."""
    response = await session.post(
        f"{base_url}/internal/agent/subscribe",
        json=registration(number),
        allow_redirects=False,
        timeout=aiohttp.ClientTimeout(total=None, connect=ANSWER_WITHIN, sock_read=ANSWER_WITHIN),
    )
    if response.status == 200:
        # Read REGISTERED: the master has admitted the agent (and counts its stream).
        reader = EventReader(response)
        await reader.next("REGISTERED", within=ANSWER_WITHIN)
        response.reader = reader  # type: ignore[attr-defined]
    return response


def election_znodes(zk_url: str) -> dict[str, tuple[dict, int]]:
    """The master election's members: znode name -> (MasterInfo, owning session id)."""
    url = parse_zookeeper_url(zk_url)
    client = KazooClient(hosts=url.hosts)
    client.start()
    try:
        members = {}
        for child in client.get_children(url.path):
            if child.startswith("json.info_"):
                data, stat = client.get(f"{url.path}/{child}")
                members[child] = (json.loads(data), stat.ephemeralOwner)
        return members
    finally:
        client.stop()
        client.close()


async def test_agents_beyond_the_descriptor_budget_get_503_and_the_master_keeps_leading(zookeeper, launcher):
    zk_url = zookeeper.url()
    port = free_port()
    master = launcher.start(
        "master",
        "master",
        f"--port={port}",
        "--ip=127.0.0.1",
        "--hostname=127.0.0.1",
        f"--zk={zk_url}",
        f"--zk_session_timeout={SESSION_TIMEOUT:g}secs",
        "--registry_flush_interval=100ms",
        f"--fd_reserve={RESERVE}",
        port=port,
        preexec_fn=low_descriptor_limit,
    )
    connector = aiohttp.TCPConnector(limit=0)  # one connection per agent, as real agents have
    async with aiohttp.ClientSession(connector=connector) as session:
        state = await _leading_state(session, master.url())
        master_id, elected_time = state["id"], state["elected_time"]
        (znode,) = [name for name, (info, _owner) in election_znodes(zk_url).items() if info["id"] == master_id]
        owner = election_znodes(zk_url)[znode][1]

        # One agent that keeps working throughout: it answers pings, and its calls must keep being served.
        first = FakeAgent(session, master.url(), hostname="first-agent.example")
        await first.subscribe()

        admitted: list[aiohttp.ClientResponse] = []
        refused = None
        for number in range(MOST_AGENTS):
            try:
                response = await register(session, master.url(), number)
            except (TimeoutError, aiohttp.ClientError) as error:
                raise AssertionError(
                    f"the master stopped answering after admitting {len(admitted)} agents: {error!r}"
                ) from None
            if response.status == 200:
                admitted.append(response)
                continue
            refused = (response.status, dict(response.headers), await response.text())
            response.close()
            break
        assert refused is not None, f"all {MOST_AGENTS} agents admitted under a limit of {DESCRIPTOR_LIMIT}"
        status, headers, text = refused
        assert status == 503, (status, text, len(admitted))
        assert 1 <= int(headers["Retry-After"]) <= 60, headers
        assert "file descriptors" in text, text
        # Most of the budget went to agents: the refusal is the budget's, not an early failure.
        assert len(admitted) >= (DESCRIPTOR_LIMIT - RESERVE) // 2, len(admitted)

        # A framework's SUBSCRIBE opens a stream too: refused the same way.
        subscribe = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "root", "name": "late"}}}
        async with session.post(
            master.url("/api/v1/scheduler"), json=subscribe, headers={"Accept": "application/json"}
        ) as response:
            assert response.status == 503, await response.text()
            assert int(response.headers["Retry-After"]) >= 1

        # Stay at the limit for two session timeouts (the lease is renewed every quarter of one, each renewal
        # a ZooKeeper request through kazoo, which needs descriptors): the master must keep its session.
        await asyncio.sleep(2 * SESSION_TIMEOUT)
        assert master.process.poll() is None, master.log()[-3000:]
        async with session.get(master.url("/health")) as response:
            assert response.status == 200
        state = await _leading_state(session, master.url())
        assert (state["id"], state["elected_time"]) == (master_id, elected_time), "a new term began"
        assert len(state["slaves"]) == len(admitted) + 1
        members = election_znodes(zk_url)
        assert members.get(znode, (None, None))[1] == owner, f"the election znode {znode} is gone: {members}"
        metrics = await get_json(session, master.url("/metrics/snapshot"))
        assert metrics["master/elected"] == 1.0
        assert metrics["master/agent_streams_refused"] >= 1
        assert metrics["master/framework_subscriptions_refused"] >= 1
        assert metrics["system/fds_max"] == DESCRIPTOR_LIMIT and metrics["system/fds_reserved"] == RESERVE
        # Agents already admitted keep working: their calls are never refused.
        assert await first.call({"type": "PONG"}) == 202

        # Some agents go away: their descriptors come back, and new agents are admitted again.
        for response in admitted[:20]:
            await response.reader.close()  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        number = MOST_AGENTS
        while True:
            number += 1
            response = await register(session, master.url(), number)
            if response.status == 200:
                admitted.append(response)
                break
            response.close()
            assert response.status == 503 and time.monotonic() < deadline, "no agent admitted after others left"
            await asyncio.sleep(0.5)

        for response in admitted[20:]:
            await response.reader.close()  # type: ignore[attr-defined]
        await first.disconnect()


async def _leading_state(session: aiohttp.ClientSession, base_url: str) -> dict:
    """/master/state of the master once it leads (within 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        async with session.get(f"{base_url}/master/state", allow_redirects=False) as response:
            if response.status == 200:
                return json.loads(await response.text())
        assert time.monotonic() < deadline, f"the master does not lead: {response.status}"
        await asyncio.sleep(0.2)


# ------------------------------------------------------------------------------- the budget itself


def test_open_descriptors_are_counted_exactly():
    before = count_open_descriptors()
    files = [open(os.devnull) for _ in range(50)]  # noqa: SIM115 (closed below)
    try:
        assert count_open_descriptors() == before + 50
    finally:
        for item in files:
            item.close()
    assert count_open_descriptors() == before


@pytest.mark.parametrize(("limit", "reserve"), [(256, 64), (1024, 102), (20_000, 2_000), (1_048_576, 4_096)])
def test_the_default_reserve_is_a_tenth_of_the_limit_within_bounds(limit, reserve):
    assert default_reserve(limit) == reserve


def test_new_streams_are_refused_from_limit_minus_reserve_with_a_rate_limited_warning(monkeypatch, caplog):
    open_now = 0
    monkeypatch.setattr(limits, "count_open_descriptors", lambda: open_now)
    budget = DescriptorBudget(limit=1000, reserve=100)
    open_now = 899
    assert budget.refuse_new_stream("agent") is None
    open_now = 900
    with caplog.at_level(logging.WARNING, logger="mesolite.master.limits"):
        refusals = [budget.refuse_new_stream("agent") for _ in range(5)] + [budget.refuse_new_stream("framework")]
    assert all(refusal is not None and 5 <= refusal.retry_after <= 15 for refusal in refusals)
    assert "900 of its 1000" in refusals[0].message
    assert len([record for record in caplog.records if "refusing" in record.message]) == 1
    assert budget.metrics() == {
        "master/agent_streams_refused": 5.0,
        "master/framework_subscriptions_refused": 1.0,
        "system/fds_max": 1000.0,
        "system/fds_reserved": 100.0,
        "system/fds_open": 900.0,
    }


def test_without_a_cheap_count_the_directory_is_listed_at_most_once_a_second(monkeypatch):
    listings = []
    monkeypatch.setattr(limits, "count_open_descriptors", lambda: listings.append(1) or 10)
    monkeypatch.setattr(limits, "_has_fast_count", lambda: False)
    budget = DescriptorBudget(limit=1000, reserve=100)
    for _ in range(100):
        assert budget.refuse_new_stream("agent") is None
    assert len(listings) == 1
