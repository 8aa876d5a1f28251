"""The rolling arithmetic of deployments and the health verdicts: pure logic, table-driven."""

from __future__ import annotations

import pytest

from mesolite.marathon.deployments import converge, plan
from mesolite.marathon.health import ProbeOutcome, record
from mesolite.marathon.tasks import HealthResult, MarathonTask


def app(instances=4, minimum=1.0, over=1.0, config="v2", kill_selection="YOUNGEST_FIRST"):
    return {
        "id": "/a",
        "instances": instances,
        "upgradeStrategy": {"minimumHealthCapacity": minimum, "maximumOverCapacity": over},
        "versionInfo": {"lastConfigChangeAt": config},
        "killSelection": kill_selection,
    }


def tasks(count, config, state="TASK_RUNNING", start=0):
    return [
        MarathonTask(f"t{config}{start + i}", "/a", "ag", "h", config, config, "", state=state, staged_epoch=start + i)
        for i in range(count)
    ]


def healthy(task):
    return task.is_running


@pytest.mark.parametrize(
    ("strategy", "old", "new", "queued", "launch", "kills"),
    [
        # minimumHealthCapacity 1, maximumOverCapacity 1: start all new ones, kill nothing yet.
        ((1.0, 1.0), 4, 0, 0, 4, 0),
        # Two new ones healthy: two old ones may go.
        ((1.0, 1.0), 4, 2, 2, 0, 2),
        # minimumHealthCapacity 0.5, over 0: kill two old; their replacements wait until they are gone.
        ((0.5, 0.0), 4, 0, 0, 0, 2),
        # minimumHealthCapacity 1, over 0: Marathon's exception, one below capacity.
        ((1.0, 0.0), 4, 0, 0, 0, 1),
        # ... but not a second one while the replacement is not healthy yet.
        ((1.0, 0.0), 3, 0, 1, 0, 0),
        # minimumHealthCapacity 0: everything old goes at once.
        ((0.0, 0.0), 4, 0, 0, 0, 4),
    ],
)
def test_rolling_restart_arithmetic(strategy, old, new, queued, launch, kills):
    minimum, over = strategy
    decision = converge(app(4, minimum, over), tasks(old, "v1") + tasks(new, "v2"), queued, healthy, rolling=True)
    assert (decision.launch, len(decision.kill)) == (launch, kills)
    assert all(task.config_version == "v1" for task in decision.kill)


def test_replacements_start_once_killed_tasks_are_gone():
    two_old = tasks(2, "v1")
    assert converge(app(4, 0.5, 0.0), two_old, 0, healthy, rolling=True, dying=2).launch == 0
    assert converge(app(4, 0.5, 0.0), two_old, 0, healthy, rolling=True, dying=0).launch == 2


def test_upgrade_completes_only_when_all_new_tasks_are_healthy():
    assert converge(app(2), tasks(2, "v2"), 0, healthy, rolling=True).done
    assert not converge(app(2), tasks(2, "v2", state="TASK_STAGING"), 0, healthy, rolling=True).done
    assert not converge(app(2), tasks(1, "v1") + tasks(2, "v2"), 0, healthy, rolling=True).done
    assert not converge(app(2), tasks(2, "v2"), 0, healthy, rolling=True, dying=1).done


@pytest.mark.parametrize(
    ("selection", "expected"), [("YOUNGEST_FIRST", ["tv24", "tv23"]), ("OLDEST_FIRST", ["tv20", "tv21"])]
)
def test_scale_down_follows_kill_selection(selection, expected):
    decision = converge(app(3, kill_selection=selection), tasks(5, "v2"), 0, healthy, rolling=False)
    assert [task.id for task in decision.kill] == expected


def test_scale_down_takes_queued_launches_first():
    decision = converge(app(3), tasks(3, "v2"), 2, healthy, rolling=False)
    assert (decision.launch, decision.kill) == (-2, [])


def test_plans_follow_marathons_actions():
    v1 = {"id": "/a", "cmd": "x", "instances": 1, "version": "1"}
    assert [[a.action for a in s] for s in plan({"/a": None}, {"/a": v1}, "1").steps] == [
        ["StartApplication"],
        ["ScaleApplication"],
    ]
    scaled = {**v1, "instances": 3, "version": "2"}
    assert [[a.action for a in s] for s in plan({"/a": v1}, {"/a": scaled}, "2").steps] == [["ScaleApplication"]]
    changed = {**v1, "cmd": "y", "version": "2"}
    assert [[a.action for a in s] for s in plan({"/a": v1}, {"/a": changed}, "2").steps] == [["RestartApplication"]]
    assert [[a.action for a in s] for s in plan({"/a": v1}, {"/a": None}, "2").steps] == [["StopApplication"]]


CHECK = {"gracePeriodSeconds": 10, "maxConsecutiveFailures": 2}


def test_failures_in_the_grace_period_do_not_count():
    result = HealthResult()
    verdict = record(result, ProbeOutcome(False, "refused"), CHECK, started_epoch=100, now=105)
    assert (verdict.counted, verdict.kill, result.consecutive_failures) == (False, False, 0)


def test_consecutive_failures_after_grace_kill_the_task():
    result = HealthResult()
    assert record(result, ProbeOutcome(True), CHECK, 100, 101).changed
    first = record(result, ProbeOutcome(False, "refused"), CHECK, 100, 102)
    assert first.changed and not first.kill, "a failure after a success counts even within the grace period"
    assert record(result, ProbeOutcome(False, "refused"), CHECK, 100, 103).kill
    assert result.last_failure_cause == "refused" and not result.alive


def test_zero_max_failures_never_kills():
    result = HealthResult()
    for now in range(200, 210):
        verdict = record(result, ProbeOutcome(False, "x"), {**CHECK, "maxConsecutiveFailures": 0}, 100, now)
    assert not verdict.kill and result.consecutive_failures == 10
