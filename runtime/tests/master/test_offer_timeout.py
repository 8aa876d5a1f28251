"""--offer_timeout (issue 16): no offer is held forever.

Mesos leaves the flag unset; an offer taken by a scheduler that never answers (or by an ACCEPT lost in a stall)
then keeps its resources out of the allocator for good. The master here defaults to 1mins. An expired offer is
rescinded (RESCIND to its framework), its resources go back to the allocator and are offered again, and an ACCEPT
that still names it is answered as Mesos answers an ACCEPT of an invalid offer: 202, then TASK_LOST
(TASK_DROPPED for PARTITION_AWARE frameworks) with REASON_INVALID_OFFERS for each of its tasks, nothing launched.
"""

from __future__ import annotations

from master_helpers import FakeAgent, Scheduler, command_task, get_json, start_master

from mesolite.master.offers import Offer, expired_offers
from mesolite.master.service import FLAGS
from mesolite.resources import Resources

TIMEOUT_FLAGS = ("--allocation_interval=100ms", "--offer_timeout=1secs")


def test_offer_timeout_defaults_to_one_minute_and_zero_disables_it(tmp_path):
    environment = {"MESOLITE_CONFIG_ROOT": str(tmp_path)}
    assert FLAGS.parse([], environment).offer_timeout == 60.0
    assert FLAGS.parse(["--offer_timeout=5mins"], environment).offer_timeout == 300.0
    assert FLAGS.parse(["--offer_timeout=0secs"], environment).offer_timeout == 0.0


def test_expiry_takes_the_offers_made_before_the_deadline_oldest_first():
    offers = {}
    for number, made_at in enumerate((10.0, 11.0, 12.0, 13.0)):
        offers[f"O{number}"] = Offer(f"O{number}", "F", "S", "*", Resources(), made_at=made_at)
    assert [offer.offer_id for offer in expired_offers(offers, 60.0, 72.0)] == ["O0", "O1", "O2"]
    assert expired_offers(offers, 60.0, 69.9) == []


async def test_a_master_started_without_the_flag_times_offers_out(launcher, http):
    master = start_master(launcher)
    state = await get_json(http, master.url("/master/state"))
    assert state["flags"]["offer_timeout"] == "60.0"


async def test_an_unanswered_offer_is_rescinded_and_offered_again(launcher, http):
    master = start_master(launcher, *TIMEOUT_FLAGS)
    agent = FakeAgent(http, master.url())
    await agent.subscribe()
    scheduler = Scheduler(http, master.url())
    await scheduler.subscribe()
    try:
        (offer,) = await scheduler.offers()
        # Not answered: after the timeout the framework is told, and the same resources come back in a new offer.
        rescind = (await scheduler.next("RESCIND", within=10))["rescind"]
        assert rescind["offer_id"] == offer["id"]
        (again,) = await scheduler.offers(within=10)
        assert again["id"] != offer["id"] and again["agent_id"] == offer["agent_id"]
        assert _scalars(again) == _scalars(offer)
        metrics = await get_json(http, master.url("/metrics/snapshot"))
        assert metrics["master/offers_rescinded"] >= 1
        assert metrics["master/outstanding_offers"] == 1  # the expired one is gone from the books
    finally:
        await scheduler.close()
        await agent.disconnect()


async def test_an_accept_of_an_expired_offer_loses_its_tasks_and_launches_nothing(launcher, http):
    # Long enough that the offer made in the expired one's place is still valid when the test uses it.
    master = start_master(launcher, "--allocation_interval=100ms", "--offer_timeout=3secs")
    agent = FakeAgent(http, master.url())
    await agent.subscribe()
    scheduler = Scheduler(http, master.url())
    await scheduler.subscribe()
    try:
        (expired,) = await scheduler.offers()
        await scheduler.next("RESCIND", within=15)
        # The ACCEPT arrives late (a scheduler that stalled): 202, as Mesos answers, and its task is lost.
        result = await scheduler.launch(expired, command_task(expired, "late-task"))
        assert result.status == 202, result.text
        status, (current,) = await _update_and_offers(scheduler)
        assert (status["task_id"]["value"], status["state"], status["reason"], status["source"]) == (
            "late-task",
            "TASK_LOST",
            "REASON_INVALID_OFFERS",
            "SOURCE_MASTER",
        )
        assert expired["id"]["value"] in status["message"] and "uuid" not in status
        # The offer made in its place is untouched by the late ACCEPT, and launches; the late task never did
        # (its RUN_TASK would have come first).
        assert current["id"] != expired["id"]
        result = await scheduler.launch(current, command_task(current, "on-time-task"))
        assert result.status == 202, result.text
        run = await agent.next("RUN_TASK")
        assert run["run_task"]["task"]["task_id"]["value"] == "on-time-task"
    finally:
        await scheduler.close()
        await agent.disconnect()


async def test_a_partition_aware_framework_gets_task_dropped_for_an_expired_offer(launcher, http):
    master = start_master(launcher, *TIMEOUT_FLAGS)
    agent = FakeAgent(http, master.url())
    await agent.subscribe()
    scheduler = Scheduler(http, master.url())
    await scheduler.subscribe({"capabilities": [{"type": "PARTITION_AWARE"}]})
    try:
        (expired,) = await scheduler.offers()
        await scheduler.next("RESCIND", within=10)
        result = await scheduler.launch(expired, command_task(expired, "late-task"))
        assert result.status == 202, result.text
        status, _offers = await _update_and_offers(scheduler)
        assert (status["state"], status["reason"]) == ("TASK_DROPPED", "REASON_INVALID_OFFERS")
    finally:
        await scheduler.close()
        await agent.disconnect()


async def _update_and_offers(scheduler: Scheduler) -> tuple[dict, list[dict]]:
    """The next UPDATE's status and the next OFFERS' offers, in whichever order they come (the re-offer of the
    rescinded resources may overtake the answer to the late ACCEPT)."""
    status = offers = None
    while status is None or offers is None:
        event = await scheduler.next("UPDATE", "OFFERS", "RESCIND", within=15)
        if event["type"] == "UPDATE":
            status = event["update"]["status"]
        elif event["type"] == "OFFERS":
            offers = event["offers"]["offers"]
        else:
            offers = None  # the re-offer itself timed out (a very slow run): wait for the next one
    return status, offers


def _scalars(offer: dict) -> dict[str, float]:
    return {item["name"]: item["scalar"]["value"] for item in offer["resources"] if item["type"] == "SCALAR"}
