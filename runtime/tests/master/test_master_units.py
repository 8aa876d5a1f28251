"""Small pure pieces of the master: role weights, redirects, the task state machine."""

import functools
from types import SimpleNamespace

import pytest
from aiohttp import web

from mesolite.flags import FlagError
from mesolite.master.http import redirect_to_leader
from mesolite.master.service import FLAGS, MasterProcess, parse_weights
from mesolite.master.tasks import Task
from mesolite.protocol.v1 import task_status
from mesolite.resources import parse_resources


@pytest.mark.parametrize(
    ("text", "weights"),
    [(None, {}), ("", {}), ("web=2", {"web": 2.0}), ("web=2, batch=0.5", {"web": 2.0, "batch": 0.5})],
)
def test_parse_weights(text, weights):
    assert parse_weights(text) == weights


@pytest.mark.parametrize("text", ["web", "web=heavy", "web=0", "web=-1"])
def test_bad_weights_name_the_entry(text):
    with pytest.raises(FlagError, match=f"'{text}'"):
        parse_weights(text)


def test_master_flags_have_mesos_defaults(tmp_path):
    flags = FLAGS.parse([], {"MESOLITE_CONFIG_ROOT": str(tmp_path)})
    assert (flags.port, flags.allocation_interval, flags.agent_ping_timeout, flags.max_agent_ping_timeouts) == (
        5050,
        1.0,
        15.0,
        5,
    )
    assert flags.agent_reregister_timeout == 600.0 and flags.offer_timeout == 60.0  # mesolite: 1mins (issue 16)
    zk = tmp_path / "etc/mesos/zk"
    zk.parent.mkdir(parents=True)
    zk.write_text("zk://10.0.0.1:2181/mesos\n")
    assert str(FLAGS.parse([], {"MESOLITE_CONFIG_ROOT": str(tmp_path)}).zk) == "zk://10.0.0.1:2181/mesos"


def process_with(leader, own_id="me"):
    """The state `redirect_target` reads, with the real method: a process that is not (yet) leading."""
    process = SimpleNamespace(leader_info=leader, info={"id": own_id}, _master=None)
    process.redirect_target = functools.partial(MasterProcess.redirect_target, process)
    return process


def test_redirects_go_to_the_leader_and_503_without_one():
    leader = {
        "id": "other",
        "hostname": "h",
        "port": 5050,
        "address": {"hostname": "m2", "ip": "10.0.0.2", "port": 5051},
    }
    with pytest.raises(web.HTTPTemporaryRedirect) as redirect:
        redirect_to_leader(process_with(leader), "/master/state?x=1")
    assert redirect.value.location == "//m2:5051/master/state?x=1"
    assert redirect_to_leader(process_with(None), "/x").status == 503
    # Elected but still recovering: not a redirect to itself.
    assert redirect_to_leader(process_with({"id": "me"}), "/x").status == 503


def test_task_states_only_move_forward():
    task = Task("t", "f", "a", "t", "*", {"name": "t"}, parse_resources("cpus:1"))
    assert task.apply(task_status("t", "TASK_RUNNING", container_status={"network_infos": []}))
    assert task.statuses[-1]["container_status"] == {"network_infos": []}
    assert task.apply(task_status("t", "TASK_FINISHED"))
    assert not task.apply(task_status("t", "TASK_RUNNING"))
    assert task.state == "TASK_FINISHED" and task.terminal
    reconciled = task.current_status(reason="REASON_RECONCILIATION")
    assert "uuid" not in reconciled and reconciled["state"] == "TASK_FINISHED"


def test_a_bad_zk_url_is_refused_with_the_flags_before_anything_starts(tmp_path):
    with pytest.raises(FlagError, match="flag --zk from the command line: invalid ZooKeeper URL 'zk1:2181/mesos'"):
        FLAGS.parse(["--zk=zk1:2181/mesos"], {"MESOLITE_CONFIG_ROOT": str(tmp_path)})
