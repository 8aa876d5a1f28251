"""Marathon's work in proportion to what changed: the per-app task index stays right through launches, kills,
replacements, deletions and failovers; ticks that converge only the changed apps still converge them; health
checks are planned for the changed and the due tasks; app versions are kept without listing the whole state."""

# ruff: noqa: F811 - fixtures imported from marathon_testing are redefined as parameters

from __future__ import annotations

import asyncio
import json

import pytest
from marathon_testing import RecordingMesos, offer, scheduler, status, storage, zk_session  # noqa: F401

from mesolite.marathon.marathon import Marathon, MarathonSettings
from mesolite.marathon.scheduler import MesosScheduler
from mesolite.marathon.storage import MarathonStorage
from mesolite.marathon.tasks import MarathonTask, TaskIndex

pytestmark = pytest.mark.integration


def assert_index_right(marathon: Marathon) -> None:
    """The per-app index says what a scan of every task says, for every app (and no app without tasks)."""
    app_ids = {t.app_id for t in marathon.tasks.values()} | set(marathon.apps) | set(marathon.stopping)
    for app_id in app_ids:
        scanned = sorted((t for t in marathon.tasks.values() if t.app_id == app_id), key=lambda t: t.staged_epoch)
        assert [t.id for t in marathon.tasks_of(app_id)] == [t.id for t in scanned], app_id
    assert set(marathon.tasks.app_ids()) == {t.app_id for t in marathon.tasks.values()}


async def launch_all(scheduler: MesosScheduler, host: str = "host-a", converge_all: bool = True) -> list[str]:
    """Tick, offer until nothing more launches, mark every launched task RUNNING; the launched task ids."""
    mesos: RecordingMesos = scheduler.client
    before = len(mesos.launched())
    await scheduler.marathon.tick(converge_all=converge_all)
    await scheduler.on_event({"type": "OFFERS", "offers": {"offers": [offer(host)]}})
    new = [t["task_id"]["value"] for t in mesos.launched()[before:]]
    for task_id in new:
        await scheduler.on_event(status(task_id, "TASK_RUNNING", agent=f"agent-{host}"))
    await scheduler.marathon.tick(converge_all=converge_all)
    return new


def task(task_id: str, app_id: str, staged_epoch: float) -> MarathonTask:
    return MarathonTask(
        task_id, app_id, "agent", "host", "v1", "v1", "2020-01-01T00:00:00.000Z", staged_epoch=staged_epoch
    )


def test_the_index_follows_adds_replacements_and_removals():
    index = TaskIndex([task("t2", "/a", 2.0), task("t1", "/a", 1.0), task("t3", "/b", 3.0)])
    assert [t.id for t in index.of_app("/a")] == ["t1", "t2"], "oldest first"
    # The same task id again, now of another app (a record replaced): it leaves its old app.
    index.add(task("t1", "/b", 4.0))
    assert [t.id for t in index.of_app("/a")] == ["t2"]
    assert [t.id for t in index.of_app("/b")] == ["t3", "t1"]
    assert index.remove("t2") is not None and index.remove("t2") is None
    assert index.of_app("/a") == [] and sorted(index.app_ids()) == ["/b"]
    assert sorted(index) == ["t1", "t3"] and len(index) == 2 and index["t3"].app_id == "/b"


async def test_the_index_stays_right_through_failures_kills_deletion_and_a_failover(scheduler):
    marathon = scheduler.marathon
    await marathon.create_app({"id": "a", "cmd": "x", "cpus": 0.1, "instances": 3, "backoffSeconds": 0.01})
    await marathon.create_app({"id": "b", "cmd": "x", "cpus": 0.1, "instances": 2})
    launched = await launch_all(scheduler)
    assert len(launched) == 5
    assert_index_right(marathon)
    # A task of /a fails: it goes, a replacement comes (converging only what changed).
    failed = marathon.tasks_of("/a")[0].id
    await scheduler.on_event(status(failed, "TASK_FAILED"))
    assert failed not in marathon.tasks and failed not in {t.id for t in marathon.tasks_of("/a")}
    await asyncio.sleep(0.05)  # the backoff
    replacement = await launch_all(scheduler, converge_all=False)
    assert len(replacement) == 1 and marathon.tasks[replacement[0]].app_id == "/a"
    assert len(marathon.tasks_of("/a")) == 3
    assert_index_right(marathon)
    # Killed and wiped through the API: gone from the index at once.
    victim = marathon.tasks_of("/b")[0].id
    await marathon.kill_tasks([victim], wipe=True)
    assert [t.id for t in marathon.tasks_of("/b")] != [] and victim not in {t.id for t in marathon.tasks_of("/b")}
    assert_index_right(marathon)
    # /b deleted: its tasks are killed, and gone from the index once Mesos confirms.
    await marathon.delete_app("/b", force=True)
    await marathon.tick(converge_all=False)
    for task_id in [t.id for t in marathon.tasks_of("/b")]:
        assert task_id in scheduler.client.of("kill")
        await scheduler.on_event(status(task_id, "TASK_KILLED"))
    await marathon.tick(converge_all=False)
    assert marathon.tasks_of("/b") == [] and "/b" not in marathon.tasks.app_ids() and "/b" not in marathon.stopping
    assert_index_right(marathon)
    # A new leader loads the same index from storage.
    successor = Marathon(marathon.storage, MarathonSettings())
    await successor.load()
    assert [t.id for t in successor.tasks_of("/a")] == [t.id for t in marathon.tasks_of("/a")]
    assert_index_right(successor)


async def test_a_tick_of_the_changed_apps_converges_them_and_ends_their_deployments(scheduler):
    marathon = scheduler.marathon
    await marathon.create_app({"id": "quiet", "cmd": "x", "cpus": 0.1, "instances": 1})
    await marathon.create_app({"id": "busy", "cmd": "x", "cpus": 0.1, "instances": 2})
    await launch_all(scheduler, converge_all=False)
    await marathon.tick(converge_all=False)
    assert not marathon.deployments, "deployments end with ticks that converge only what changed"
    # Scaling /busy: the next tick (of changed apps only) queues the launches and the deployment ends.
    await marathon.update_app("/busy", {"instances": 4})
    await marathon.tick(converge_all=False)
    assert marathon.queue.count("/busy") == 2 and marathon.queue.count("/quiet") == 0
    await launch_all(scheduler, converge_all=False)
    assert len(marathon.active_tasks("/busy")) == 4 and not marathon.deployments
    # A task lost outside any deployment is replaced by a tick of the changed apps only.
    lost = marathon.tasks_of("/quiet")[0].id
    await scheduler.on_event(status(lost, "TASK_KILLED"))
    await marathon.tick(converge_all=False)
    assert marathon.queue.count("/quiet") == 1


async def test_health_checks_are_planned_for_changed_and_due_tasks(scheduler):
    marathon = scheduler.marathon
    check = {"protocol": "TCP", "portIndex": 0, "intervalSeconds": 1, "timeoutSeconds": 1, "gracePeriodSeconds": 300}
    await marathon.create_app({"id": "h", "cmd": "x", "cpus": 0.1, "instances": 2, "healthChecks": [check]})
    first, second = await launch_all(scheduler, host="127.0.0.1")  # nothing listens: probes fail at once
    marathon.take_changed_tasks()
    scheduler._schedule_health_checks([first], everything=False)
    assert {task_id for task_id, _ in scheduler._probing} == {first}, "only the changed task is probed"
    await asyncio.gather(*scheduler._probes)
    scheduler._schedule_health_checks([], everything=False)
    assert scheduler._probing == set(), "not due yet"
    await asyncio.sleep(1.1)
    scheduler._schedule_health_checks([], everything=False)
    assert {task_id for task_id, _ in scheduler._probing} == {first}, "due again after its interval"
    await asyncio.gather(*scheduler._probes)
    scheduler._schedule_health_checks([], everything=True)
    assert {task_id for task_id, _ in scheduler._probing} == {second}, "every task's due checks with everything"
    await asyncio.gather(*scheduler._probes)


async def test_app_versions_are_kept_without_listing_the_state_again(storage: MarathonStorage, zk_session):
    storage.max_versions = 3
    for day in range(1, 6):
        await storage.save_app({"id": "/v/app", "version": f"2020-01-0{day}T00:00:00.000Z"})
    await storage.save_app({"id": "/v", "version": "2020-02-01T00:00:00.000Z"})
    expected = [f"2020-01-0{day}T00:00:00.000Z" for day in (5, 4, 3)]
    assert await storage.app_versions("/v/app") == expected
    assert await storage.app_versions("/v") == ["2020-02-01T00:00:00.000Z"]
    # Another instance (a new leader) lists what is stored: the same.
    fresh = MarathonStorage(storage.store)
    assert await fresh.app_versions("/v/app") == expected
    assert await fresh.app_versions("/v") == ["2020-02-01T00:00:00.000Z"]
    await storage.delete_app("/v/app")
    assert await storage.app_versions("/v/app") == []
    assert await MarathonStorage(storage.store).app_versions("/v/app") == []
    assert await MarathonStorage(storage.store).app_versions("/v") == ["2020-02-01T00:00:00.000Z"]


async def test_the_list_view_of_an_app_follows_its_tasks_and_deployments(scheduler):
    """GET /v2/apps answers from encoded views kept per app: each change of tasks or deployments shows."""
    from mesolite.marathon.api.views import app_json, app_json_text

    marathon = scheduler.marathon
    embeds = {"counts", "deployments"}

    def view() -> dict:
        text = json.loads(app_json_text(marathon, marathon.apps["/l"], embeds))
        assert text == app_json(marathon, marathon.apps["/l"], embeds)
        return text

    await marathon.create_app({"id": "l", "cmd": "x", "cpus": 0.1, "instances": 2, "backoffSeconds": 0.01})
    assert view()["deployments"] != [] and view()["tasksRunning"] == 0
    first, _second = await launch_all(scheduler, converge_all=False)
    assert view()["tasksRunning"] == 2 and view()["deployments"] == []
    await scheduler.on_event(status(first, "TASK_FAILED"))
    assert view()["tasksRunning"] == 1
    await marathon.update_app("/l", {"instances": 1})
    assert view()["instances"] == 1 and view()["deployments"] != []
