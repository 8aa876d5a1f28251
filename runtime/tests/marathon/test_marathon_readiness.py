"""Readiness checks (`readinessChecks`): validation, the deployment gate in the scheduler core (verdicts fed by
hand, and probes against a real HTTP server on loopback), and a rolling upgrade end to end."""

# ruff: noqa: F811 - fixtures imported from marathon_testing are redefined as parameters

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from marathon_cluster import SERVE
from marathon_testing import RecordingMesos, offer, scheduler, status, storage, zk_session  # noqa: F401

from harness.http import get_json, http
from harness.processes import free_port
from harness.waiting import wait_for
from mesolite.marathon.app_definition import ValidationError, normalize_app
from mesolite.marathon.scheduler import MesosScheduler

pytestmark = pytest.mark.integration


def ready_app(**readiness) -> dict:
    return {
        "id": "web",
        "cmd": "x",
        "cpus": 0.1,
        "instances": 1,
        "portDefinitions": [{"port": 0, "name": "http"}],
        "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1},
        "readinessChecks": [
            {"name": "ready", "portName": "http", "path": "/ready", "intervalSeconds": 2, "timeoutSeconds": 1}
            | readiness
        ],
    }


# -- validation ----------------------------------------------------------------------------------


def test_readiness_checks_get_marathons_defaults():
    app = normalize_app(ready_app() | {"readinessChecks": [{"portName": "http"}]})
    assert app["readinessChecks"] == [
        {
            "name": "readinessCheck",
            "protocol": "HTTP",
            "path": "/",
            "portName": "http",
            "intervalSeconds": 30,
            "timeoutSeconds": 10,
            "httpStatusCodesForReady": [200],
            "preserveLastResponse": False,
        }
    ]


@pytest.mark.parametrize(
    ("readiness", "field"),
    [
        ({"portName": "admin"}, "/readinessChecks(0)/portName"),
        ({"protocol": "TCP"}, "/readinessChecks(0)/protocol"),
        ({"httpStatusCodesForReady": [200, 600]}, "/readinessChecks(0)/httpStatusCodesForReady(1)"),
        ({"httpStatusCodesForReady": []}, "/readinessChecks(0)/httpStatusCodesForReady"),
        ({"intervalSeconds": 2, "timeoutSeconds": 5}, "/readinessChecks(0)/timeoutSeconds"),
        ({"path": "ready"}, "/readinessChecks(0)/path"),
        ({"preserveLastResponse": "yes"}, "/readinessChecks(0)/preserveLastResponse"),
        ({"portIndex": 0}, "/readinessChecks(0)/portIndex"),
    ],
)
def test_invalid_readiness_checks_name_the_field(readiness, field):
    with pytest.raises(ValidationError) as raised:
        normalize_app(ready_app(**readiness))
    assert field in [path for path, _reason in raised.value.violations]


# -- the deployment gate in the scheduler core -----------------------------------------------------


async def settle(scheduler: MesosScheduler, rounds: int = 2) -> None:
    for _ in range(rounds):
        await scheduler.marathon.tick()


async def launch_and_run(scheduler: MesosScheduler, hostname: str = "host-a", ports=((31000, 31100),)) -> list[str]:
    mesos: RecordingMesos = scheduler.client
    before = len(mesos.launched())
    await settle(scheduler)
    await scheduler.on_event({"type": "OFFERS", "offers": {"offers": [offer(hostname, ports=ports)]}})
    new = [t["task_id"]["value"] for t in mesos.launched()[before:]]
    for task_id in new:
        await scheduler.on_event(status(task_id, "TASK_RUNNING", agent=f"agent-{hostname}"))
    await settle(scheduler)
    return new


async def test_rolling_restart_keeps_the_old_task_until_the_new_one_is_ready(scheduler):
    marathon = scheduler.marathon
    await marathon.create_app(ready_app())
    [old] = await launch_and_run(scheduler)
    # Readiness gates what a deployment starts: the first task must be ready before the app is deployed.
    assert marathon.deployments
    await marathon.readiness_verdict(marathon.tasks[old], {"name": "ready", "taskId": old, "ready": True})
    await settle(scheduler)
    assert not marathon.deployments

    deployment = await marathon.restart_app("/web")
    [new] = await launch_and_run(scheduler)
    await marathon.readiness_verdict(marathon.tasks[new], {"name": "ready", "taskId": new, "ready": False})
    for _round in range(3):
        await settle(scheduler)
    assert old not in scheduler.client.of("kill"), "the old task was killed before its replacement was ready"
    [action] = marathon.deployments[deployment.id].to_json(marathon.readiness_results_of)["currentActions"]
    assert action["readinessCheckResults"] == [{"name": "ready", "taskId": new, "ready": False}]

    await marathon.readiness_verdict(marathon.tasks[new], {"name": "ready", "taskId": new, "ready": True})
    await settle(scheduler)
    assert old in scheduler.client.of("kill")
    await scheduler.on_event(status(old, "TASK_KILLED"))
    await settle(scheduler)
    assert not marathon.deployments


async def test_scaling_up_waits_for_new_tasks_not_for_the_running_ones(scheduler):
    marathon = scheduler.marathon
    await marathon.create_app(ready_app())
    [first] = await launch_and_run(scheduler)
    await marathon.readiness_verdict(marathon.tasks[first], {"name": "ready", "taskId": first, "ready": True})
    await settle(scheduler)
    deployment, _created = await marathon.update_app("/web", {"instances": 2})
    [second] = await launch_and_run(scheduler)
    assert deployment.id in marathon.deployments, "a scale-up must wait for its new task to be ready"
    await marathon.readiness_verdict(marathon.tasks[second], {"name": "ready", "taskId": second, "ready": True})
    await settle(scheduler)
    assert deployment.id not in marathon.deployments


async def test_the_scheduler_probes_the_port_named_by_port_name(scheduler):
    """The check runs from Marathon against the task's host and its `http` port, with the app's status codes,
    and keeps the last response when asked to."""
    answers = {"status": 503}

    async def ready(_request: web.Request) -> web.Response:
        return web.Response(status=answers["status"], text=f"status {answers['status']}")

    application = web.Application()
    application.router.add_get("/ready", ready)
    runner = web.AppRunner(application)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    marathon = scheduler.marathon
    try:
        definition = ready_app(httpStatusCodesForReady=[200, 204], preserveLastResponse=True)
        await marathon.create_app(definition)
        ticks = asyncio.create_task(scheduler.run_ticks())
        try:
            [task_id] = await launch_and_run(scheduler, "127.0.0.1", ports=((port, port),))
            for _ in range(100):
                if marathon.readiness_results.get(task_id):
                    break
                await asyncio.sleep(0.1)
            [result] = marathon.readiness_results_of("/web")
            assert result["ready"] is False
            assert result["lastResponse"]["status"] == 503
            assert result["lastResponse"]["body"] == "status 503"
            assert marathon.deployments
            answers["status"] = 204
            for _ in range(100):
                if not marathon.deployments:
                    break
                await asyncio.sleep(0.1)
            assert not marathon.deployments, "the deployment did not finish once the task answered 204"
        finally:
            ticks.cancel()
            await asyncio.gather(ticks, return_exceptions=True)
    finally:
        await runner.cleanup()


# -- end to end -------------------------------------------------------------------------------------


def test_rolling_upgrade_waits_for_the_readiness_check(cluster, tmp_path):
    cluster.start_agent("127.0.0.1")
    service = cluster.start_marathon()
    site = tmp_path / "site"
    site.mkdir()
    app = {
        "id": "web",
        "cmd": SERVE,
        "cpus": 0.1,
        "mem": 32,
        "instances": 1,
        "portDefinitions": [{"port": 0, "name": "http"}],
        "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1},
    }
    assert http("POST", service.url("/v2/apps"), app)[0] == 201
    wait_for(lambda: get_json(service.url("/v2/deployments")) == [], 60, what="the first version deployed")
    [old] = [t["id"] for t in get_json(service.url("/v2/apps/web/tasks"))["tasks"]]

    # Version 2 serves `site`, and is ready only once the file `ready` appears there.
    upgrade = {
        "cmd": f"cd {site} && {SERVE}",
        "readinessChecks": [
            {"name": "ready", "portName": "http", "path": "/ready", "intervalSeconds": 2, "timeoutSeconds": 1}
        ],
    }
    status_code, _headers, body = http("PUT", service.url("/v2/apps/web"), upgrade)
    assert status_code == 200, body

    def not_ready_results() -> list:
        deployments = get_json(service.url("/v2/deployments"))
        assert deployments, "the deployment finished although the new task was never ready"
        return [
            result
            for action in deployments[0]["currentActions"]
            for result in action["readinessCheckResults"]
            if result["ready"] is False
        ]

    [result] = wait_for(not_ready_results, 60, what="a readiness result saying not ready")
    assert result["name"] == "ready" and result["taskId"] != old
    tasks = {t["id"]: t for t in get_json(service.url("/v2/apps/web/tasks"))["tasks"]}
    assert tasks[old]["state"] == "TASK_RUNNING", "the old task must run until the new one is ready"
    assert tasks[result["taskId"]]["state"] == "TASK_RUNNING"

    (site / "ready").write_text("ok\n")
    wait_for(lambda: get_json(service.url("/v2/deployments")) == [], 60, what="the upgrade finished")
    remaining = [t["id"] for t in get_json(service.url("/v2/apps/web/tasks"))["tasks"]]
    assert remaining == [result["taskId"]]


def test_invalid_readiness_check_is_a_422_naming_the_field(cluster):
    service = cluster.start_marathon()
    app = {"id": "bad", "cmd": "sleep 100", "cpus": 0.1, "mem": 32, "portDefinitions": [{"port": 0, "name": "http"}]}
    app["readinessChecks"] = [{"portName": "admin"}]
    status_code, _headers, body = http("POST", service.url("/v2/apps"), app)
    assert status_code == 422
    assert [detail["path"] for detail in body["details"]] == ["/readinessChecks(0)/portName"]
