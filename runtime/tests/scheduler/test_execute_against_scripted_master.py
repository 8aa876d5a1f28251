"""mesos-execute against a scripted master, for races the real master produces only now and then.

The real master allocates concurrently with the calls it serves, so an OFFERS event can reach mesos-execute
right after its own TEARDOWN (about one run in ten under load); the scripted master sends it at exactly that
moment. mesos-execute runs in-process here so that any exception it lets escape fails the test.
"""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from scripted_master import ScriptedMaster

from mesolite.cli.execute import FLAGS, Execution, build_task

AGENT_ID = {"value": "agent-1"}
RESOURCES = [
    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2.0}},
    {"name": "mem", "type": "SCALAR", "scalar": {"value": 1024.0}},
]


def offers_event(offer_id: str) -> dict:
    offer = {
        "id": {"value": offer_id},
        "framework_id": {"value": "framework-1"},
        "agent_id": AGENT_ID,
        "hostname": "127.0.0.1",
        "resources": RESOURCES,
    }
    return {"type": "OFFERS", "offers": {"offers": [offer]}}


def update_event(task_id: str, state: str, status_uuid: str) -> dict:
    status = {"task_id": {"value": task_id}, "agent_id": AGENT_ID, "state": state, "uuid": status_uuid}
    return {"type": "UPDATE", "update": {"status": status}}


class TaskThenLateOffers:
    """The master's side of one mesos-execute run: the task runs and finishes; TEARDOWN's answer is
    preceded by an OFFERS event (an allocation that ran just before the teardown), and from then on
    every call is refused as the real master refuses calls of a removed framework."""

    def __init__(self, master: ScriptedMaster, final_state: str) -> None:
        self.master = master
        self.final_state = final_state
        self.removed = False

    async def __call__(self, call: dict) -> web.Response | None:
        if self.removed:
            return web.Response(status=403, text="Framework framework-1 has been removed")
        kind = call["type"]
        if kind == "ACCEPT":
            task_id = call["accept"]["operations"][0]["launch"]["task_infos"][0]["task_id"]["value"]
            await self.master.send(update_event(task_id, "TASK_RUNNING", "UlVOTklORw=="))
        elif kind == "ACKNOWLEDGE" and call["acknowledge"]["uuid"] == "UlVOTklORw==":
            await self.master.send(update_event(call["acknowledge"]["task_id"]["value"], self.final_state, "RU5E"))
        elif kind == "TEARDOWN":
            await self.master.send(offers_event("offer-late"))
            # Let the client's connection take the event in before it hears that TEARDOWN was accepted
            # (client and master share this event loop, so the loop reads it during the pause).
            await asyncio.sleep(0.2)
            self.removed = True
        return None


@pytest.fixture
async def master():
    started = await ScriptedMaster().start()
    yield started
    await started.stop()


async def run_execute(master: ScriptedMaster, *arguments: str) -> int:
    flags = FLAGS.parse([f"--master={master.address}", *arguments])
    execution = Execution(flags, build_task(flags))
    run = asyncio.create_task(execution.run())
    await asyncio.wait_for(execution.client.subscribed.wait(), 30)
    await master.send(offers_event("offer-1"))
    return await asyncio.wait_for(run, 30)


@pytest.mark.parametrize(("final_state", "exit_code"), [("TASK_FINISHED", 0), ("TASK_FAILED", 1)])
async def test_offers_after_its_own_teardown_are_ignored(master, capsys, final_state, exit_code):
    master.on_call = TaskThenLateOffers(master, final_state)
    assert await run_execute(master, "--name=race", "--command=true") == exit_code
    output = capsys.readouterr()
    assert f"Received status update {final_state} for task 'race'" in output.out
    assert "Traceback" not in output.err and "refused" not in output.err, output.err
    calls = [call["type"] for call, _stream_id in master.calls]
    assert calls[-1] == "TEARDOWN", calls  # nothing after it: the late offers were not even declined


async def test_a_refused_call_ends_with_one_line_and_exit_status_3(master, capsys):
    async def refuse_accept(call: dict) -> web.Response | None:
        if call["type"] == "ACCEPT":
            return web.Response(status=400, text="Failed to validate scheduler::Call: Expecting 'accept.offer_ids'")
        return None

    master.on_call = refuse_accept
    assert await run_execute(master, "--name=refused", "--command=true") == 3
    error = capsys.readouterr().err
    assert error.strip() == (
        "mesos-execute: HTTP 400: ACCEPT refused: Failed to validate scheduler::Call: Expecting 'accept.offer_ids'"
    )
