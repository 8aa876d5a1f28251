"""The scheduler core against real ZooKeeper storage, with the master's side played by a recording client."""

# ruff: noqa: F811 - fixtures imported from marathon_testing are redefined as parameters

from __future__ import annotations

import asyncio

import pytest
from marathon_testing import RecordingMesos, offer, scheduler, status, storage, zk_session  # noqa: F401

from mesolite.marathon.marathon import Conflict, Marathon, MarathonSettings
from mesolite.marathon.scheduler import MesosScheduler

pytestmark = pytest.mark.integration


async def settle(scheduler: MesosScheduler, rounds: int = 2) -> None:
    for _ in range(rounds):
        await scheduler.marathon.tick()


async def run_all(scheduler: MesosScheduler, app_id: str, host: str = "host-a") -> list[str]:
    """Offer until nothing more launches; mark every launched task RUNNING. Returns the launched task ids."""
    mesos: RecordingMesos = scheduler.client
    before = len(mesos.launched())
    await settle(scheduler)
    await scheduler.on_event({"type": "OFFERS", "offers": {"offers": [offer(host)]}})
    new = [t["task_id"]["value"] for t in mesos.launched()[before:]]
    for task_id in new:
        await scheduler.on_event(status(task_id, "TASK_RUNNING", agent=f"agent-{host}"))
    await settle(scheduler)
    return new


async def test_storage_round_trips_large_apps_and_versions(storage):
    big_env = {f"VARIABLE_{index}": "x" * 1000 for index in range(1500)}  # ~1.5 MB: over the znode limit
    app = {"id": "/big", "version": "2015-01-01T00:00:00.000Z", "env": big_env}
    await storage.save_app(app)
    await storage.save_app({**app, "version": "2015-01-02T00:00:00.000Z"})
    await storage.save_framework_id("fw-1")
    loaded = await storage.load()
    assert loaded.apps["/big"]["env"] == big_env
    assert loaded.framework_id == "fw-1"
    assert await storage.app_versions("/big") == ["2015-01-02T00:00:00.000Z", "2015-01-01T00:00:00.000Z"]
    await storage.delete_app("/big")
    assert (await storage.load()).apps == {}
    assert await storage.app_versions("/big") == []


async def test_app_is_launched_from_an_offer_and_deployment_finishes(scheduler):
    marathon = scheduler.marathon
    app, deployment = await marathon.create_app({"id": "web", "cmd": "sleep 100", "cpus": 0.5, "instances": 2})
    assert [[a.action for a in step] for step in deployment.steps] == [["StartApplication"], ["ScaleApplication"]]
    launched = await run_all(scheduler, "/web")
    assert len(launched) == 2
    assert all(marathon.tasks[t].state == "TASK_RUNNING" for t in launched)
    assert marathon.deployments == {}
    kinds = [event["eventType"] for event in marathon.events.recent]
    assert "deployment_success" in kinds and "status_update_event" in kinds
    assert len(scheduler.client.of("acknowledge")) == 2
    # The state survives a new Marathon (a restart or a failover).
    reloaded = Marathon(marathon.storage, MarathonSettings())
    await reloaded.load()
    assert set(reloaded.tasks) == set(launched)
    assert reloaded.apps["/web"]["versionInfo"] == app["versionInfo"]


async def test_waiting_launch_says_why(scheduler):
    marathon = scheduler.marathon
    await marathon.create_app({"id": "big", "cmd": "x", "cpus": 2, "constraints": [["hostname", "UNIQUE"]]})
    await settle(scheduler)
    offers = [offer("small", cpus=1.5), offer("small", cpus=1), offer("small", cpus=0.5)]
    await scheduler.on_event({"type": "OFFERS", "offers": {"offers": offers}})
    assert scheduler.client.launched() == []
    summary = marathon.waiting_summary("/big")["summary"]
    assert summary == "3 offers declined: 3 insufficient cpus (need 2, largest 1.5)"
    declined = scheduler.client.of("decline")[-1]
    assert declined[1]["refuse_seconds"] <= 5
    await marathon.tick()
    announced = [e for e in marathon.events.recent if e["eventType"] == "deployment_info" and "waiting" in e]
    assert announced[-1]["waiting"] == {"/big": summary}


async def test_unique_constraint_and_replacement_after_failure(scheduler):
    marathon = scheduler.marathon
    await marathon.create_app(
        {
            "id": "u",
            "cmd": "x",
            "cpus": 0.1,
            "instances": 2,
            "backoffSeconds": 0.01,
            "constraints": [["hostname", "UNIQUE", ""]],
        }
    )
    first = await run_all(scheduler, "/u", host="host-a")
    assert len(first) == 1, "UNIQUE allows one task per host"
    assert "constraint hostname:UNIQUE" in marathon.waiting_summary("/u")["summary"]
    second = await run_all(scheduler, "/u", host="host-b")
    assert len(second) == 1
    await scheduler.on_event(status(first[0], "TASK_FAILED", message="exit 1"))
    assert first[0] not in marathon.tasks
    assert marathon.last_failures["/u"]["state"] == "TASK_FAILED"
    await asyncio.sleep(0.05)  # the backoff
    replacement = await run_all(scheduler, "/u", host="host-a")
    assert len(replacement) == 1


async def test_unknown_running_task_is_killed(scheduler):
    await scheduler.on_event(status("ghost.1234", "TASK_RUNNING"))
    assert "ghost.1234" in scheduler.client.of("kill")


async def test_locked_app_conflicts_unless_forced(scheduler):
    marathon = scheduler.marathon
    await marathon.create_app({"id": "l", "cmd": "x"})
    with pytest.raises(Conflict) as caught:
        await marathon.update_app("/l", {"instances": 3})
    assert caught.value.deployments
    deployment, created = await marathon.update_app("/l", {"instances": 3}, force=True)
    assert not created and list(marathon.deployments) == [deployment.id]


async def test_rolling_restart_never_goes_below_minimum_health_capacity(scheduler):
    marathon = scheduler.marathon
    await marathon.create_app(
        {
            "id": "r",
            "cmd": "x",
            "cpus": 0.1,
            "instances": 4,
            "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0},
        }
    )
    old = await run_all(scheduler, "/r")
    assert len(old) == 4
    await marathon.restart_app("/r")
    lowest = 4
    for _round in range(10):
        await settle(scheduler, 1)
        for task_id in scheduler.client.of("kill"):
            if task_id in marathon.tasks:
                await scheduler.on_event(status(task_id, "TASK_KILLED"))
        running = [t for t in marathon.tasks.values() if t.is_running and t.kill_requested_at is None]
        lowest = min(lowest, len(running))
        assert len(marathon.tasks) <= 4, "maximumOverCapacity 0 allows no extra task"
        await run_all(scheduler, "/r")
        if not marathon.deployments:
            break
    assert not marathon.deployments
    assert lowest >= 2
    assert not set(old) & set(marathon.tasks)
    assert len(marathon.active_tasks("/r")) == 4


async def test_scale_down_kills_youngest_first_and_rollback_restores(scheduler):
    marathon = scheduler.marathon
    await marathon.create_app({"id": "s", "cmd": "x", "cpus": 0.1, "instances": 3})
    launched = await run_all(scheduler, "/s")
    for index, task_id in enumerate(launched):
        marathon.tasks[task_id].staged_epoch = 1000 + index
    await marathon.update_app("/s", {"instances": 1})
    await settle(scheduler)
    killed = scheduler.client.of("kill")
    assert killed == [launched[2], launched[1]]
    assert marathon.deployments, "the scaling is done only when the killed tasks are gone"
    for task_id in killed:
        await scheduler.on_event(status(task_id, "TASK_KILLED"))
    await settle(scheduler)
    assert not marathon.deployments
    deployment, _ = await marathon.update_app("/s", {"cmd": "y", "instances": 5})
    rollback = await marathon.rollback(deployment.id)
    assert marathon.apps["/s"]["cmd"] == "x" and marathon.apps["/s"]["instances"] == 1
    assert rollback.id in marathon.deployments and deployment.id not in marathon.deployments


async def test_deleting_an_app_kills_its_tasks_then_terminates(scheduler):
    marathon = scheduler.marathon
    await marathon.create_app({"id": "d", "cmd": "x", "cpus": 0.1})
    (task_id,) = await run_all(scheduler, "/d")
    await marathon.delete_app("/d", force=True)
    await settle(scheduler)
    assert task_id in scheduler.client.of("kill")
    await scheduler.on_event(status(task_id, "TASK_KILLED"))
    await settle(scheduler)
    assert "/d" not in marathon.stopping and not marathon.deployments
    assert any(e["eventType"] == "app_terminated_event" for e in marathon.events.recent)


async def test_a_new_leader_continues_an_upgrade_without_going_below_the_minimum(scheduler):
    marathon = scheduler.marathon
    strategy = {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.5}
    await marathon.create_app({"id": "f", "cmd": "x", "cpus": 0.1, "instances": 4, "upgradeStrategy": strategy})
    old = await run_all(scheduler, "/f")
    await marathon.update_app("/f", {"cmd": "y"})
    await settle(scheduler, 1)
    killed = scheduler.client.of("kill")
    assert len(killed) == 2
    for task_id in killed:
        await scheduler.on_event(status(task_id, "TASK_KILLED"))
    new = await run_all(scheduler, "/f")
    assert len(new) == 4
    # The leader dies here; another one loads the state and goes on.
    successor = MesosScheduler(Marathon(marathon.storage, MarathonSettings()))
    await successor.marathon.load()
    successor.attach(RecordingMesos())
    survivors = [t for t in old if t not in killed]
    assert {t: successor.marathon.tasks[t].state for t in survivors} == dict.fromkeys(survivors, "TASK_RUNNING")
    await settle(successor)
    assert successor.client.of("kill") == [], "no old task may go before new ones are healthy"


async def test_unreachable_task_is_replaced_and_the_surplus_killed_when_it_returns(scheduler):
    marathon = scheduler.marathon
    await marathon.create_app({"id": "p", "cmd": "x", "cpus": 0.1, "instances": 1})
    (first,) = await run_all(scheduler, "/p")
    await scheduler.on_event(status(first, "TASK_UNREACHABLE"))
    await settle(scheduler)
    assert first not in [t.id for t in marathon.active_tasks("/p")]
    (replacement,) = await run_all(scheduler, "/p")
    assert replacement != first
    # The partitioned agent comes back with the old task (expunged meanwhile, as expungeAfterSeconds is 0):
    # an unknown task, which is killed.
    await scheduler.on_event(status(first, "TASK_RUNNING"))
    await settle(scheduler)
    assert first in scheduler.client.of("kill")
    assert [t.id for t in marathon.active_tasks("/p")] == [replacement]


async def test_reconciliation_unknown_is_asked_again_not_replaced(scheduler):
    marathon = scheduler.marathon
    await marathon.create_app({"id": "q", "cmd": "x", "cpus": 0.1, "instances": 1})
    (task_id,) = await run_all(scheduler, "/q")
    await scheduler.on_event(status(task_id, "TASK_UNKNOWN", reason="REASON_RECONCILIATION", source="SOURCE_MASTER"))
    await settle(scheduler)
    assert marathon.tasks[task_id].reconciling_since is not None
    assert marathon.queue.count("/q") == 0, "not replaced while its agent may come back"
    await scheduler._reconcile_unknown()
    assert scheduler.client.of("reconcile")[-1] == [(task_id, "agent-host-a")]
    await scheduler.on_event(status(task_id, "TASK_RUNNING"))
    assert marathon.tasks[task_id].reconciling_since is None


async def test_health_verdicts_publish_events_and_kill_after_max_failures(scheduler):
    from mesolite.marathon.health import ProbeOutcome

    marathon = scheduler.marathon
    check = {"protocol": "TCP", "gracePeriodSeconds": 0, "intervalSeconds": 1, "maxConsecutiveFailures": 2}
    await marathon.create_app({"id": "h", "cmd": "x", "cpus": 0.1, "healthChecks": [check]})
    (task_id,) = await run_all(scheduler, "/h")
    task = marathon.tasks[task_id]
    await marathon.health_verdict(task, 0, ProbeOutcome(True))
    assert marathon.is_healthy(task, marathon.apps["/h"])
    await marathon.health_verdict(task, 0, ProbeOutcome(False, "connection refused"))
    assert task_id not in scheduler.client.of("kill")
    await marathon.health_verdict(task, 0, ProbeOutcome(False, "connection refused"))
    assert task_id in scheduler.client.of("kill")
    kinds = [e["eventType"] for e in marathon.events.recent]
    assert kinds.count("health_status_changed_event") == 2
    assert "unhealthy_task_kill_event" in kinds and "failed_health_check_event" in kinds


async def test_updates_of_an_unknown_task_are_killed_at_most_once_per_window(scheduler, monkeypatch):
    from mesolite.marathon import scheduler as scheduler_module
    from mesolite.retry import RetryPolicy

    monkeypatch.setattr(
        scheduler_module, "UNKNOWN_TASK_KILL_POLICY", RetryPolicy(0.2, 0.2, jitter=False), raising=False
    )
    for _ in range(50):  # e.g. the master answering each kill with the task's state
        await scheduler.on_event(status("ghost.1", "TASK_RUNNING"))
    assert scheduler.client.of("kill") == ["ghost.1"]
    await asyncio.sleep(0.25)
    await scheduler.on_event(status("ghost.1", "TASK_RUNNING"))
    assert scheduler.client.of("kill") == ["ghost.1", "ghost.1"], "killed again once the window is over"
    assert len(scheduler.client.of("acknowledge")) == 51, "every update is still acknowledged"


async def test_the_masters_answer_about_an_unreachable_unknown_task_is_not_killed(scheduler):
    # The master answers a KILL of a task on an unreachable agent with TASK_UNREACHABLE: killing that answer
    # again was an endless loop (issue 11, defect 9).
    answer = status("ghost.2", "TASK_UNREACHABLE", reason="REASON_RECONCILIATION", source="SOURCE_MASTER")
    answer["update"]["status"].pop("uuid")
    for _ in range(5):
        await scheduler.on_event(answer)
    await scheduler.on_event(status("ghost.3", "TASK_LOST"))
    await scheduler.on_event(status("ghost.4", "TASK_GONE"))
    assert scheduler.client.of("kill") == []


async def test_a_retried_starting_does_not_undo_running(scheduler):
    marathon = scheduler.marathon
    await marathon.create_app({"id": "s", "cmd": "x", "cpus": 0.1})
    (task_id,) = await run_all(scheduler, "/s")
    # After a failover the agent re-sends the TASK_STARTING nobody acknowledged; reconciliation said RUNNING.
    await scheduler.on_event(status(task_id, "TASK_STARTING"))
    assert marathon.tasks[task_id].state == "TASK_RUNNING"
    assert scheduler.client.of("acknowledge")[-1]["state"] == "TASK_STARTING", "acknowledged all the same"


async def test_deleting_a_group_whose_apps_stop_in_different_ticks_finishes(scheduler):
    marathon = scheduler.marathon
    apps = [{"id": name, "cmd": "x", "cpus": 0.1} for name in ("a", "b", "c")]
    await marathon.put_group({"id": "/g", "apps": apps})
    launched = await run_all(scheduler, "/g/a")
    assert len(launched) == 3 and not marathon.deployments
    deployment = await marathon.delete_group("/g")
    await settle(scheduler)
    assert sorted(scheduler.client.of("kill")) == sorted(launched)
    for task_id in launched:  # one app stops per tick
        await scheduler.on_event(status(task_id, "TASK_KILLED"))
        await settle(scheduler, 1)
    assert deployment.id not in marathon.deployments, "the deletion's deployment finished"
    assert not marathon.stopping
