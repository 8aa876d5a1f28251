"""SchedulerClient against scripted masters over real HTTP (and a real ZooKeeper for detection).

The masters here (scripted_master.py) play scripted parts (a non-leader that redirects, a leader that falls
silent, one that refuses): the real master cannot be made to misbehave on cue. The client against
the real master is exercised by tests/cli (mesos-execute).
"""

from __future__ import annotations

import asyncio
import json

import pytest
from scripted_master import ScriptedMaster

from mesolite.scheduler.client import FrameworkRemoved, SchedulerClient, SchedulerError
from mesolite.zookeeper.detector import ip_to_uint32
from mesolite.zookeeper.session import ZooKeeperSession


@pytest.fixture
async def master():
    started = await ScriptedMaster().start()
    yield started
    await started.stop()


class Framework:
    """Runs a SchedulerClient in the background and collects its events."""

    def __init__(self, master_spec: str, **options) -> None:
        self.events: list[dict] = []
        self.client = SchedulerClient(
            master_spec, {"user": "root", "name": "test-framework"}, self.events.append, reconnect_delay=0.1, **options
        )
        self.task: asyncio.Task | None = None

    def start(self) -> Framework:
        self.task = asyncio.create_task(self.client.run())
        return self

    async def wait_for(self, predicate, what: str, within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                if self.task is not None and self.task.done():
                    self.task.result()  # raises what run() raised
                    pytest.fail(f"client stopped while waiting for {what}")
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        await self.client.stop()
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)


def event_types(framework: Framework) -> list[str]:
    return [event["type"] for event in framework.events]


async def test_subscribes_and_sends_calls_with_stream_and_framework_id(master):
    framework = Framework(master.address).start()
    try:
        await framework.wait_for(lambda: framework.client.framework_id, "SUBSCRIBED")
        assert master.subscribes[0]["subscribe"]["framework_info"]["name"] == "test-framework"
        await master.send({"type": "HEARTBEAT"})
        await framework.wait_for(lambda: "HEARTBEAT" in event_types(framework), "HEARTBEAT")
        await framework.client.decline(["offer-1"], {"refuse_seconds": 5.0})
        await framework.client.acknowledge(
            {"task_id": {"value": "t"}, "agent_id": {"value": "a"}, "uuid": "AAAA", "state": "TASK_RUNNING"}
        )
        await framework.client.acknowledge({"task_id": {"value": "t"}, "state": "TASK_LOST"})  # no uuid: no call
        (decline, stream_id), (acknowledge, _) = master.calls
        assert stream_id == "stream-1"
        assert decline == {
            "framework_id": {"value": "framework-1"},
            "type": "DECLINE",
            "decline": {"offer_ids": [{"value": "offer-1"}], "filters": {"refuse_seconds": 5.0}},
        }
        assert acknowledge["acknowledge"] == {"agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": "AAAA"}
    finally:
        await framework.stop()


async def test_follows_a_redirect_from_a_non_leader(master):
    follower = await ScriptedMaster().start()
    follower.redirect_to = master.address
    framework = Framework(follower.address).start()
    try:
        await framework.wait_for(lambda: framework.client.subscribed.is_set(), "SUBSCRIBED via redirect")
        assert framework.client.master_address == master.address
        assert len(follower.subscribes) == 1
    finally:
        await framework.stop()
        await follower.stop()


async def test_resubscribes_with_the_same_framework_id_when_the_stream_ends(master):
    framework = Framework(master.address).start()
    try:
        await framework.wait_for(lambda: framework.client.subscribed.is_set(), "SUBSCRIBED")
        await master.close_streams()
        await framework.wait_for(lambda: len(master.subscribes) == 2, "a second SUBSCRIBE")
        again = master.subscribes[1]
        assert again["framework_id"] == {"value": "framework-1"}
        assert again["subscribe"]["framework_info"]["id"] == {"value": "framework-1"}
        await framework.wait_for(lambda: framework.client.stream_id == "stream-2", "the new stream id")
    finally:
        await framework.stop()


async def test_reconnects_when_heartbeats_stop():
    silent = await ScriptedMaster(heartbeat_interval=0.2).start()
    framework = Framework(silent.address, missed_heartbeats=2).start()
    try:
        # SUBSCRIBED announces 0.2 s heartbeats; none follow, so after 2 intervals the client reconnects.
        await framework.wait_for(lambda: len(silent.subscribes) >= 2, "a re-subscription after silence", 5)
        assert silent.subscribes[1]["framework_id"] == {"value": "framework-1"}
    finally:
        await framework.stop()
        await silent.stop()


async def test_refused_subscription_raises(master):
    master.refuse_with = 400
    framework = Framework(master.address).start()
    with pytest.raises(SchedulerError, match=r"HTTP 400: framework_info\.name is missing"):
        await asyncio.wait_for(framework.task, 10)


async def test_error_event_ends_run_with_framework_removed(master):
    framework = Framework(master.address).start()
    await framework.wait_for(lambda: framework.client.subscribed.is_set(), "SUBSCRIBED")
    await master.send({"type": "ERROR", "error": {"message": "Framework has been removed"}})
    with pytest.raises(FrameworkRemoved, match="Framework has been removed"):
        await asyncio.wait_for(framework.task, 10)
    assert event_types(framework) == ["SUBSCRIBED", "ERROR"]
    assert len(master.subscribes) == 1, "no re-subscription after ERROR"


async def test_a_closed_stream_is_not_final_and_the_client_keeps_subscribing(master):
    """A master stepping down closes the stream without ERROR: the client subscribes again, however often."""
    framework = Framework(master.address).start()
    try:
        for attempt in range(2, 5):
            await framework.wait_for(lambda: framework.client.subscribed.is_set(), "SUBSCRIBED")
            await master.close_streams()
            await framework.wait_for(lambda a=attempt: len(master.subscribes) == a, f"SUBSCRIBE number {attempt}")
        assert not framework.task.done()
        assert all(s["framework_id"] == {"value": "framework-1"} for s in master.subscribes[1:])
    finally:
        await framework.stop()


async def test_calls_before_subscribing_are_refused_clearly(master):
    framework = Framework(master.address)
    with pytest.raises(Exception, match="not subscribed"):
        await framework.client.revive()


def master_info(address: str) -> dict:
    ip, port = address.split(":")
    return {"id": address, "ip": ip_to_uint32(ip), "port": int(port), "pid": f"master@{address}",
            "hostname": "localhost", "address": {"hostname": "localhost", "ip": ip, "port": int(port)}}  # fmt: skip


@pytest.mark.integration
async def test_detects_the_leader_in_zookeeper_and_follows_a_change(zookeeper, master):
    second = await ScriptedMaster().start()
    url = zookeeper.url()
    async with ZooKeeperSession(url) as session:
        await session.run(session.client.ensure_path, session.url.path)
        first_node = await session.run(
            session.client.create, session.url.child("json.info_"), json.dumps(master_info(master.address)).encode(),
            sequence=True,
        )  # fmt: skip
        framework = Framework(url).start()
        try:
            await framework.wait_for(lambda: framework.client.subscribed.is_set(), "SUBSCRIBED via ZooKeeper")
            assert framework.client.master_address == master.address
            # Failover: the old leader's znode goes, a new leader registers.
            await session.run(
                session.client.create, session.url.child("json.info_"),
                json.dumps(master_info(second.address)).encode(), sequence=True,
            )  # fmt: skip
            await session.run(session.client.delete, first_node)
            await framework.wait_for(lambda: second.subscribes, "a SUBSCRIBE at the new leader")
            assert second.subscribes[0]["framework_id"] == {"value": "framework-1"}
            await framework.wait_for(lambda: framework.client.master_address == second.address, "the switch")
        finally:
            await framework.stop()
            await second.stop()


async def test_no_event_is_delivered_after_teardown(master):
    # An event already on its way when the master accepts TEARDOWN (here: sent just before the answer)
    # must not reach the framework: any call it made on it would be refused (the framework is gone).
    async def offers_before_answering_teardown(call: dict) -> None:
        if call["type"] == "TEARDOWN":
            await master.send({"type": "OFFERS", "offers": {"offers": []}})
            await asyncio.sleep(0.2)  # the client (same event loop) reads the event meanwhile

    master.on_call = offers_before_answering_teardown
    delivered: list[str] = []

    async def on_event(event: dict) -> None:
        delivered.append(event["type"])
        if event["type"] == "HEARTBEAT":
            await client.teardown()

    client = SchedulerClient(master.address, {"user": "root", "name": "test-framework"}, on_event)
    run = asyncio.create_task(client.run())
    await asyncio.wait_for(client.subscribed.wait(), 10)
    await master.send({"type": "HEARTBEAT"})
    await asyncio.wait_for(run, 10)
    assert delivered == ["SUBSCRIBED", "HEARTBEAT"]
    assert [call["type"] for call, _stream_id in master.calls] == ["TEARDOWN"]
