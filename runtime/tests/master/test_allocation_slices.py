"""Allocation in slices and only where something changed (issue 16: a cycle over 50,000 agents must not hold
the master's event loop for more than 50 ms).

The allocator's cycle is `begin_cycle(now)`, then `allocate_slice(cycle, max_agents)` until `cycle.done`; the
master sends each slice's offers and yields to its event loop in between. These tests check the bookkeeping
(pure logic) and, on a `Master` built without HTTP, that other coroutines run between slices. No timing.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from mesolite.ids import IdGenerator
from mesolite.master import master as master_module
from mesolite.master.agents import RegisteredAgent
from mesolite.master.allocator import Allocator
from mesolite.master.frameworks import Framework
from mesolite.master.master import Master, MasterSettings
from mesolite.master.offers import Offer, OfferEncoder, offers_event
from mesolite.resources import Resources, parse_resources

AGENT = "cpus:4;mem:4096"


def allocator_with(agent_count: int, frameworks: tuple[str, ...] = ("f1",)) -> Allocator:
    alloc = Allocator(shuffle=False)
    for index in range(agent_count):
        alloc.add_agent(f"a{index:03d}", parse_resources(AGENT))
    for framework_id in frameworks:
        alloc.add_framework(framework_id, ["*"])
    return alloc


def run_in_slices(alloc: Allocator, now: float, max_agents: int) -> tuple[list, int]:
    """A whole cycle in slices of `max_agents`: (allocations, how many slices it took)."""
    cycle = alloc.begin_cycle(now)
    allocations, slices = [], 0
    while not cycle.done:
        allocations += alloc.allocate_slice(cycle, max_agents)
        slices += 1
    return allocations, slices


# -- only what changed ----------------------------------------------------------------------------------


def test_an_unchanged_cluster_considers_no_agent_and_offers_nothing():
    alloc = allocator_with(20)
    assert len(alloc.allocate(1.0)) == 20
    cycle = alloc.begin_cycle(2.0)
    assert cycle.done and cycle.remaining == 0
    assert alloc.allocate(3.0) == []


def test_a_resource_recovered_on_one_agent_is_offered_next_cycle_and_only_that_agent_is_considered():
    alloc = allocator_with(20)
    offers = {offer.agent_id: offer for offer in alloc.allocate(1.0)}
    freed = parse_resources("cpus:1;mem:512")
    alloc.recover("f1", "*", "a007", freed)
    cycle = alloc.begin_cycle(2.0)
    assert cycle.remaining == 1
    allocations = alloc.allocate_slice(cycle)
    assert [(a.framework_id, a.agent_id, a.resources) for a in allocations] == [("f1", "a007", freed)]
    assert offers["a007"].resources.contains(freed)


def test_a_new_framework_gets_offers_from_every_agent_over_one_cycles_slices():
    alloc = allocator_with(10, frameworks=())
    assert alloc.allocate(1.0) == []  # nobody to offer to yet
    alloc.add_framework("late", ["*"])
    allocations, slices = run_in_slices(alloc, 2.0, max_agents=3)
    assert slices == 4  # 10 agents, 3 a slice
    assert sorted(a.agent_id for a in allocations) == [f"a{index:03d}" for index in range(10)]
    assert {a.framework_id for a in allocations} == {"late"}


def test_a_filter_expiring_makes_its_agent_a_candidate_again():
    alloc = allocator_with(5)
    offers = alloc.allocate(1.0)
    declined = offers[0]
    alloc.recover("f1", "*", declined.agent_id, declined.resources, refuse_seconds=5.0, now=1.0)
    assert alloc.allocate(2.0) == []  # filtered: considered once, then dropped until something changes
    assert alloc.begin_cycle(3.0).remaining == 0  # nothing changed (the filter still holds)
    cycle = alloc.begin_cycle(7.0)  # the filter expired at 6.0
    assert cycle.agent_ids == [declined.agent_id]
    assert [a.agent_id for a in alloc.allocate_slice(cycle)] == [declined.agent_id]


def test_the_safety_pass_considers_every_agent_with_free_resources_again():
    alloc = allocator_with(6)
    offers = alloc.allocate(1.0)
    for offer in offers[:2]:  # two agents come back free, under a long filter: dropped after one look
        alloc.recover("f1", "*", offer.agent_id, offer.resources, refuse_seconds=3600.0, now=1.0)
    assert alloc.allocate(2.0) == []
    assert alloc.begin_cycle(3.0).remaining == 0
    alloc.wake_all()
    cycle = alloc.begin_cycle(4.0)
    assert sorted(cycle.agent_ids) == sorted(offer.agent_id for offer in offers[:2])
    assert alloc.allocate_slice(cycle) == []  # still filtered: the pass offers nothing that should not be


# -- slices ---------------------------------------------------------------------------------------------


def test_slices_decide_exactly_as_one_whole_cycle():
    """DRF order is kept across slices: the same agents go to the same frameworks as in one piece."""
    whole = allocator_with(30, frameworks=("f1", "f2", "f3"))
    whole.track("f1", "*", "a000", parse_resources("cpus:2;mem:1024"))
    sliced = allocator_with(30, frameworks=("f1", "f2", "f3"))
    sliced.track("f1", "*", "a000", parse_resources("cpus:2;mem:1024"))
    in_one_piece = whole.allocate(1.0)
    in_slices, slices = run_in_slices(sliced, 1.0, max_agents=1)
    assert slices == 30
    assert in_slices == in_one_piece
    for framework_id in ("f1", "f2", "f3"):
        assert sliced.framework_share(framework_id, "*") == whole.framework_share(framework_id, "*")


def test_an_agent_removed_between_slices_is_not_offered():
    alloc = allocator_with(10)
    cycle = alloc.begin_cycle(1.0)
    first = alloc.allocate_slice(cycle, 4)
    assert [a.agent_id for a in first] == ["a000", "a001", "a002", "a003"]
    alloc.remove_agent("a006")
    alloc.set_agent_active("a007", False)
    rest = []
    while not cycle.done:
        rest += alloc.allocate_slice(cycle, 4)
    assert [a.agent_id for a in rest] == ["a004", "a005", "a008", "a009"]


def test_a_framework_removed_between_slices_gets_no_more_offers():
    alloc = allocator_with(6, frameworks=("f1", "f2"))
    cycle = alloc.begin_cycle(1.0)
    first = alloc.allocate_slice(cycle, 2)
    assert {a.framework_id for a in first} == {"f1", "f2"}
    alloc.remove_framework("f2")
    rest = []
    while not cycle.done:
        rest += alloc.allocate_slice(cycle, 2)
    assert [(a.framework_id, a.agent_id) for a in rest] == [("f1", f"a00{index}") for index in range(2, 6)]


def test_resources_taken_between_slices_are_not_offered_twice():
    alloc = allocator_with(4)
    cycle = alloc.begin_cycle(1.0)
    alloc.allocate_slice(cycle, 1)
    # Between slices, a re-registering agent reports a task that holds all of a002.
    alloc.track("f1", "*", "a002", parse_resources(AGENT))
    rest = alloc.allocate_slice(cycle)
    assert [a.agent_id for a in rest] == ["a001", "a003"]


def test_an_aborted_cycle_leaves_the_agents_it_did_not_reach_for_the_next():
    alloc = allocator_with(10)
    cycle = alloc.begin_cycle(1.0)
    first = alloc.allocate_slice(cycle, 3)
    alloc.abort_cycle(cycle)
    assert cycle.done
    rest = alloc.allocate(2.0)
    assert sorted(a.agent_id for a in first + rest) == [f"a{index:03d}" for index in range(10)]


def test_a_shuffled_cycle_still_considers_every_agent_once():
    alloc = Allocator(shuffle=True)
    for index in range(200):
        alloc.add_agent(f"a{index:03d}", parse_resources(AGENT))
    alloc.add_framework("f1", ["*"])
    allocations, _slices = run_in_slices(alloc, 1.0, max_agents=7)
    assert sorted(a.agent_id for a in allocations) == [f"a{index:03d}" for index in range(200)]


# -- the master: offers go out slice by slice, and the loop runs in between ------------------------------


class RecordingStream:
    """A framework's event stream that keeps the events (and what the other coroutine had counted)."""

    closed = False

    def __init__(self, ticks: list[int]):
        self.ticks = ticks
        self.events: list[tuple[int, dict]] = []
        self.sent = asyncio.Event()

    def send(self, event: dict) -> None:
        self.events.append((self.ticks[0], event))
        self.sent.set()

    def send_encoded(self, record: bytes) -> None:
        self.send(json.loads(record))


def master_with(agent_count: int, stream: RecordingStream, is_leading=lambda: True) -> Master:
    master = Master({"id": "m", "hostname": "localhost"}, IdGenerator("m"), MasterSettings(), is_leading=is_leading)
    total = parse_resources(AGENT)
    for index in range(agent_count):
        agent_id = f"m-S{index}"
        master.agents[agent_id] = RegisteredAgent(agent_id, {"hostname": f"h{index}", "port": 5051}, total)
        master.allocator.add_agent(agent_id, total)
    framework = Framework("m-0000", {"name": "f", "user": "u"}, stream=stream)  # type: ignore[arg-type]
    master.frameworks["m-0000"] = framework
    master.allocator.add_framework("m-0000", framework.roles)
    return master


@pytest.fixture
def one_step_slices(monkeypatch):
    """Every slice is one step (the time budget is spent at once), so slicing does not depend on speed."""
    monkeypatch.setattr(master_module, "ALLOCATION_SLICE_SECONDS", 0.0)
    monkeypatch.setattr(master_module, "ALLOCATION_STEP_AGENTS", 50)


def offered_agent_ids(stream: RecordingStream) -> list[str]:
    return [
        offer["agent_id"]["value"]
        for _tick, event in stream.events
        if event["type"] == "OFFERS"
        for offer in event["offers"]["offers"]
    ]


async def test_a_cycle_over_more_agents_than_a_slice_lets_other_coroutines_run_in_between(one_step_slices):
    ticks = [0]
    stream = RecordingStream(ticks)
    master = master_with(200, stream)
    done = asyncio.Event()

    async def other_work() -> None:
        while not done.is_set():
            ticks[0] += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    offered = await master.run_allocation()
    done.set()
    await other
    assert offered == 200
    assert sorted(offered_agent_ids(stream)) == sorted(master.agents)
    # Four slices of 50 agents, each sent as it was decided, with the other coroutine running in between.
    offer_ticks = [tick for tick, event in stream.events if event["type"] == "OFFERS"]
    assert len(offer_ticks) == 4 and len(set(offer_ticks)) == 4


async def test_an_agent_removed_while_the_master_allocates_is_not_offered(one_step_slices):
    ticks = [0]
    stream = RecordingStream(ticks)
    master = master_with(200, stream)
    cycle_order: list[str] = []
    begin_cycle = master.allocator.begin_cycle

    def remembering_begin_cycle(now):
        cycle = begin_cycle(now)
        cycle.shuffle = False  # known order: the last agent is reached in the last slice
        cycle_order.extend(cycle.agent_ids)
        return cycle

    master.allocator.begin_cycle = remembering_begin_cycle  # type: ignore[method-assign]
    allocation = asyncio.create_task(master.run_allocation())
    await stream.sent.wait()  # the first slice's offers are out; the cycle waits for its next slice
    last = cycle_order[-1]
    master.allocator.remove_agent(last)
    del master.agents[last]
    assert await allocation == 199
    assert last not in offered_agent_ids(stream)
    assert len(master.offers) == 199


async def test_a_master_that_stops_leading_stops_allocating_and_keeps_the_rest_for_later(one_step_slices):
    leading = [True]
    stream = RecordingStream([0])
    master = master_with(200, stream, is_leading=lambda: leading[0])
    allocation = asyncio.create_task(master.run_allocation())
    await stream.sent.wait()  # the first slice's offers are out; the cycle waits for its next slice
    leading[0] = False
    assert await allocation == 50
    assert master.allocator.has_pending_work(0.0)
    leading[0] = True
    assert await master.run_allocation() == 150
    assert sorted(offered_agent_ids(stream)) == sorted(master.agents)


# -- offers encoded from parts: the same JSON as before ---------------------------------------------------


def test_an_encoded_offer_is_exactly_the_offers_json():
    encoder = OfferEncoder()
    info = {"hostname": "h1", "port": 5051, "ip": "127.0.0.1", "attributes": [{"name": "rack", "text": "r\u00e9"}]}
    agent = RegisteredAgent("a-S1", {**info, "domain": {"fault_domain": {"region": {"name": "eu"}}}}, Resources())
    resources = parse_resources("cpus(web):2;mem:1024;ports:[31000-31005]")
    unavailability = {"start": {"nanoseconds": 5}}
    for offer, unavailable in [
        (Offer('m-O"1', "fw\\1", agent.agent_id, "web", resources), None),
        (Offer("m-O2", "fw-2", agent.agent_id, "*", resources.unreserved()), unavailability),
    ]:
        decoded = json.loads(encoder.encode(offer, agent, unavailable))
        assert decoded == offer.to_protobuf_json(agent, [], unavailable)
    # A re-registered agent (new AgentInfo) is encoded afresh.
    agent.info = {**info, "hostname": "h2"}
    offer = Offer("m-O3", "fw-2", agent.agent_id, "*", resources.unreserved())
    assert json.loads(encoder.encode(offer, agent))["hostname"] == "h2"
    event = json.loads(offers_event([encoder.encode(offer, agent)] * 2))
    assert event == {"type": "OFFERS", "offers": {"offers": [offer.to_protobuf_json(agent, [])] * 2}}
