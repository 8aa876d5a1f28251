"""The master's task state machine with the agent's `latest_state` (issue 11, defect 7)."""

from __future__ import annotations

from mesolite.master.tasks import Task
from mesolite.protocol.v1 import task_status
from mesolite.resources import parse_resources


def new_task() -> Task:
    return Task("t", "f", "a", "e", "*", {"name": "t"}, parse_resources("cpus:1"))


def test_the_latest_state_is_the_tasks_state_while_an_older_update_awaits_acknowledgement():
    task = new_task()
    starting = task_status("t", "TASK_STARTING")
    assert task.apply(starting, latest_state="TASK_RUNNING")
    assert task.state == "TASK_RUNNING"
    assert task.current_status(reason="REASON_RECONCILIATION")["state"] == "TASK_RUNNING"
    assert [entry["state"] for entry in task.statuses] == ["TASK_STARTING"], "the history is of forwarded updates"
    # The retry of the same update changes nothing; its acknowledgement does not end the task.
    assert not task.apply(starting, latest_state="TASK_RUNNING")
    assert len(task.statuses) == 1
    assert not task.acknowledged(starting["uuid"])
    assert task.unacknowledged_uuid is None


def test_a_terminal_latest_state_ends_the_task_but_only_its_own_update_lets_it_go():
    task = new_task()
    starting = task_status("t", "TASK_STARTING")
    assert task.apply(starting, latest_state="TASK_FINISHED")
    assert task.terminal
    assert not task.acknowledged(starting["uuid"]), "TASK_FINISHED itself is not acknowledged yet"
    finished = task_status("t", "TASK_FINISHED")
    assert not task.apply(finished, latest_state="TASK_FINISHED")
    assert task.acknowledged(finished["uuid"])


def test_a_terminal_state_is_final_whatever_latest_state_says():
    task = new_task()
    task.apply(task_status("t", "TASK_KILLED"))
    assert not task.apply(task_status("t", "TASK_RUNNING"), latest_state="TASK_RUNNING")
    assert task.state == "TASK_KILLED"
