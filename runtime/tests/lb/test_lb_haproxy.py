"""`mesolite lb` against a real HAProxy: traffic reaches the tasks, scaling needs no reload, vhosts route by
Host, a configuration HAProxy rejects never replaces the running one, and a killed task drains with no failed
request. Marathon is the stand-in of lb_testing (why: see there); the backends are real HTTP servers."""

from __future__ import annotations

import asyncio
import logging
import ssl

import aiohttp
import pytest
from lb_testing import (
    StandInMarathon,
    answers,
    fresh_connections,
    get,
    marathon_app,
    requires_haproxy,
    running_lb,
    until_served,
)

from harness.processes import free_port
from harness.waiting import eventually

pytestmark = requires_haproxy


async def master_reloads(lb) -> int:
    """HAProxy's own reload count (the master CLI's `show proc`), independent of the LB's counter."""
    return (await lb.haproxy.show_proc()).reloads


async def test_requests_reach_every_task_and_the_observability_endpoints_answer(marathon, backends):
    first, second = await backends("first"), await backends("second")
    service_port = free_port()
    marathon.put_app(marathon_app("/web", service_port, {"HAPROXY_GROUP": "external"}))
    marathon.run_task("/web", first.port)
    marathon.run_task("/web", second.port)
    async with running_lb(marathon) as lb, fresh_connections() as session:
        await until_served(session, f"http://127.0.0.1:{service_port}/", {"first", "second"})
        stats = f"http://127.0.0.1:{lb.flags.stats_port}"
        assert (await get(session, f"{stats}/_haproxy_health_check"))[0] == 200
        status, metrics = await get(session, f"{stats}/metrics")
        assert status == 200 and "haproxy_process_nbthread" in metrics and 'proxy="web_' in metrics
        status, page = await get(session, f"{stats}/haproxy?stats")
        assert status == 200 and "web_" in page
        config = lb.haproxy.config_path.read_text()
        assert f"frontend web_{service_port}" in config and f"backend web_{service_port}" in config


async def test_an_app_of_another_group_is_not_served_unless_ungrouped_apps_are(marathon, backends):
    other, ungrouped = await backends("other"), await backends("ungrouped")
    other_port, ungrouped_port = free_port(), free_port()
    marathon.put_app(marathon_app("/internal", other_port, {"HAPROXY_GROUP": "internal"}))
    marathon.put_app(marathon_app("/nginx", ungrouped_port))  # the reference nginx.json: no group label
    marathon.run_task("/internal", other.port)
    marathon.run_task("/nginx", ungrouped.port)
    async with running_lb(marathon, "--expose_ungrouped") as lb, fresh_connections() as session:
        await until_served(session, f"http://127.0.0.1:{ungrouped_port}/", {"ungrouped"})
        assert f"internal_{other_port}" not in lb.haproxy.config_path.read_text()


async def test_scaling_up_and_down_changes_servers_without_a_reload(marathon, backends):
    service_port = free_port()
    url = f"http://127.0.0.1:{service_port}/"
    marathon.put_app(marathon_app("/web", service_port, {"HAPROXY_GROUP": "external"}))
    first = await backends("b0")
    marathon.run_task("/web", first.port)
    async with running_lb(marathon) as lb, fresh_connections() as session:
        await until_served(session, url, {"b0"})
        reloads, haproxy_reloads = lb.haproxy.reloads, await master_reloads(lb)

        added = [await backends(f"b{number}") for number in range(1, 5)]
        tasks = [marathon.run_task("/web", backend.port) for backend in added]
        await until_served(session, url, {f"b{number}" for number in range(5)})

        for task in tasks:
            marathon.start_killing(task)
            marathon.remove_task(task)
        await until_served(session, url, {"b0"})

        assert lb.haproxy.reloads == reloads, "scaling reloaded HAProxy"
        assert await master_reloads(lb) == haproxy_reloads, "HAProxy's master counted a reload"
        assert lb.balancer.runtime_changes >= 8  # 4 servers in (addr + ready), 4 drained and emptied


async def test_growing_past_the_server_slots_reloads_once_and_keeps_serving(marathon, backends):
    service_port = free_port()
    url = f"http://127.0.0.1:{service_port}/"
    marathon.put_app(marathon_app("/web", service_port, {"HAPROXY_GROUP": "external"}))
    started = [await backends(f"b{number}") for number in range(3)]
    marathon.run_task("/web", started[0].port)
    async with running_lb(marathon, "--server_slots=2") as lb, fresh_connections() as session:
        await until_served(session, url, {"b0"})
        reloads = lb.haproxy.reloads
        for backend in started[1:]:
            marathon.run_task("/web", backend.port)
        await until_served(session, url, {"b0", "b1", "b2"})
        assert lb.haproxy.reloads == reloads + 1
        assert "server slot4 " in lb.haproxy.config_path.read_text()  # two slots doubled to four


async def test_a_vhost_label_routes_by_host_on_the_http_port(marathon, backends):
    web, api = await backends("web"), await backends("api")
    marathon.put_app(marathon_app("/web", free_port(), {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "web.test"}))
    marathon.put_app(
        marathon_app(
            "/api",
            free_port(),
            {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "web.test,api.test", "HAPROXY_0_PATH": "/api"},
        )
    )
    marathon.run_task("/web", web.port)
    marathon.run_task("/api", api.port)
    async with running_lb(marathon) as lb, fresh_connections() as session:
        http = f"http://127.0.0.1:{lb.flags.http_port}"
        await until_served(session, f"{http}/", {"web"}, host="web.test")
        await until_served(session, f"{http}/api/items", {"api"}, host="web.test:80")
        await until_served(session, f"{http}/api/items", {"api"}, host="API.test")
        assert (await get(session, f"{http}/", "api.test"))[0] == 503  # api.test routes /api only
        assert (await get(session, f"{http}/", "unknown.test"))[0] == 503
        assert set(web.hosts) == {"web.test"}


async def test_a_bad_label_is_rejected_and_the_running_configuration_stays(marathon, backends, caplog):
    good, more = await backends("good"), await backends("more")
    good_port, bad_port = free_port(), free_port()
    url = f"http://127.0.0.1:{good_port}/"
    marathon.put_app(marathon_app("/good", good_port, {"HAPROXY_GROUP": "external"}))
    marathon.run_task("/good", good.port)
    async with running_lb(marathon) as lb, fresh_connections() as session:
        await until_served(session, url, {"good"})
        running_config = lb.haproxy.config_path.read_text()
        reloads = lb.haproxy.reloads
        caplog.set_level(logging.ERROR, logger="mesolite.lb")

        labels = {"HAPROXY_GROUP": "external", "HAPROXY_0_BALANCE": "fastest-please"}
        marathon.put_app(marathon_app("/bad", bad_port, labels))
        await eventually(lambda: "rejected" in caplog.text, within=15, what="the rejection in the log")
        assert "fastest-please" in caplog.text  # HAProxy's own reason is logged
        assert lb.haproxy.config_path.read_text() == running_config
        assert lb.haproxy.reloads == reloads

        # The running configuration keeps following its apps' tasks.
        marathon.run_task("/good", more.port)
        await until_served(session, url, {"good", "more"})
        assert lb.haproxy.reloads == reloads

        # Fixing the label brings the app in with one reload.
        labels["HAPROXY_0_BALANCE"] = "leastconn"
        marathon.put_app(marathon_app("/bad", bad_port, labels))
        await eventually(lambda: lb.haproxy.reloads == reloads + 1, within=15, what="the reload with the fixed label")
        assert f"backend bad_{bad_port}" in lb.haproxy.config_path.read_text()


async def test_only_healthy_tasks_take_traffic(marathon, backends):
    healthy, unhealthy = await backends("healthy"), await backends("unhealthy")
    service_port = free_port()
    url = f"http://127.0.0.1:{service_port}/"
    checks = [{"protocol": "HTTP", "path": "/", "portIndex": 0, "gracePeriodSeconds": 5, "intervalSeconds": 1}]
    marathon.put_app(marathon_app("/web", service_port, {"HAPROXY_GROUP": "external"}, checks))
    marathon.run_task("/web", healthy.port, healthy=True)
    late = marathon.run_task("/web", unhealthy.port, healthy=False)
    async with running_lb(marathon) as lb, fresh_connections() as session:
        await until_served(session, url, {"healthy"})
        assert "mode http" in lb.haproxy.config_path.read_text()  # an HTTP health check makes the port http
        marathon.set_healthy(late, True)
        await until_served(session, url, {"healthy", "unhealthy"})


async def test_a_killed_task_drains_with_no_failed_request_under_load(marathon: StandInMarathon, backends):
    """200 requests over a few seconds while one of three tasks is killed: the task turns TASK_KILLING, later its
    process answers 503 (it is shutting down), then it ends. No request may fail."""
    service_port = free_port()
    url = f"http://127.0.0.1:{service_port}/"
    marathon.put_app(marathon_app("/web", service_port, {"HAPROXY_GROUP": "external"}))
    servers = [await backends(f"b{number}") for number in range(3)]
    tasks = [marathon.run_task("/web", server.port) for server in servers]
    async with running_lb(marathon) as lb, fresh_connections() as session:
        await until_served(session, url, {"b0", "b1", "b2"})
        reloads = lb.haproxy.reloads
        results: list[str] = []

        async def client() -> None:
            for _ in range(50):
                results.extend(await answers(session, url, 1))
                await asyncio.sleep(0.06)

        async def kill() -> None:
            await asyncio.sleep(1.0)
            marathon.start_killing(tasks[2])
            await asyncio.sleep(0.5)  # Marathon's kill grace period: then the process is told to stop
            servers[2].failing = True
            await asyncio.sleep(0.5)
            marathon.remove_task(tasks[2])
            await servers[2].stop()

        await asyncio.gather(*(client() for _ in range(4)), kill())
        failures = [result for result in results if result not in {"b0", "b1", "b2"}]
        assert len(results) == 200
        assert failures == [], f"{len(failures)} failed requests: {failures[:5]}"
        assert results.count("b2") > 0  # the killed task served until it was killed
        assert lb.haproxy.reloads == reloads


async def test_an_haproxy_that_dies_is_started_again(marathon, backends):
    first = await backends("first")
    service_port = free_port()
    url = f"http://127.0.0.1:{service_port}/"
    marathon.put_app(marathon_app("/web", service_port, {"HAPROXY_GROUP": "external"}))
    marathon.run_task("/web", first.port)
    async with running_lb(marathon) as lb, fresh_connections() as session:
        await until_served(session, url, {"first"})
        dead = lb.haproxy.process
        dead.kill()
        await dead.wait()
        await eventually(lambda: lb.haproxy.process is not dead and lb.haproxy.running, what="a new HAProxy")
        await until_served(session, url, {"first"})


async def test_ssl_cert_serves_the_vhost_by_sni_and_http_redirects(marathon, backends, cluster_pki, tmp_path):
    secure = await backends("secure")
    bundle = tmp_path / "localhost.pem"  # HAProxy's crt: the certificate chain and its key in one PEM
    bundle.write_text(cluster_pki.certificate_file.read_text() + cluster_pki.key_file.read_text())
    labels = {
        "HAPROXY_GROUP": "external",
        "HAPROXY_0_VHOST": "localhost",
        "HAPROXY_0_SSL_CERT": str(bundle),
        "HAPROXY_0_REDIRECT_TO_HTTPS": "true",
    }
    marathon.put_app(marathon_app("/secure", free_port(), labels))
    marathon.run_task("/secure", secure.port)
    client_context = ssl.create_default_context(cafile=str(cluster_pki.ca_file))
    async with running_lb(marathon) as lb, fresh_connections() as session:
        https = f"https://localhost:{lb.flags.https_port}/"

        async def answered() -> bool:
            try:
                async with session.get(https, ssl=client_context) as response:
                    return response.status == 200 and await response.text() == "secure"
            except aiohttp.ClientError:
                return False

        for _ in range(200):
            if await answered():
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail(f"{https} never answered through HAProxy")
        http = f"http://127.0.0.1:{lb.flags.http_port}/page"
        async with session.get(http, headers={"Host": "localhost"}, allow_redirects=False) as response:
            assert response.status == 301
            assert response.headers["Location"] == "https://localhost/page"


async def load(session: aiohttp.ClientSession, url: str, clients: int = 4, each: int = 50, pause: float = 0.06):
    """A bounded load generator: `clients` x `each` requests (a new connection each), spread over a few seconds."""
    results: list[str] = []

    async def client() -> None:
        for _ in range(each):
            results.extend(await answers(session, url, 1))
            await asyncio.sleep(pause)

    await asyncio.gather(*(client() for _ in range(clients)))
    return results


async def test_scaling_one_to_five_to_one_under_load_fails_no_request(marathon, backends):
    service_port = free_port()
    url = f"http://127.0.0.1:{service_port}/"
    marathon.put_app(marathon_app("/web", service_port, {"HAPROXY_GROUP": "external"}))
    servers = [await backends(f"b{number}") for number in range(5)]
    marathon.run_task("/web", servers[0].port)
    async with running_lb(marathon) as lb, fresh_connections() as session:
        await until_served(session, url, {"b0"})
        reloads = lb.haproxy.reloads

        async def scale() -> None:
            await asyncio.sleep(0.5)
            tasks = [marathon.run_task("/web", server.port) for server in servers[1:]]
            await asyncio.sleep(1.5)
            for task, server in zip(tasks, servers[1:], strict=True):
                marathon.start_killing(task)
                await asyncio.sleep(0.3)  # the kill grace period; then the process stops serving
                server.failing = True
                marathon.remove_task(task)

        results, _ = await asyncio.gather(load(session, url), scale())
        failures = [result for result in results if result not in {f"b{number}" for number in range(5)}]
        assert failures == [], f"{len(failures)} of {len(results)} requests failed: {failures[:5]}"
        assert len({result for result in results}) == 5  # every task served while it ran
        assert lb.haproxy.reloads == reloads


async def test_reloads_for_new_apps_under_load_fail_no_request(marathon, backends):
    service_port = free_port()
    url = f"http://127.0.0.1:{service_port}/"
    marathon.put_app(marathon_app("/web", service_port, {"HAPROXY_GROUP": "external"}))
    first = await backends("first")
    marathon.run_task("/web", first.port)
    async with running_lb(marathon) as lb, fresh_connections() as session:
        await until_served(session, url, {"first"})
        reloads = lb.haproxy.reloads

        async def add_apps() -> None:
            for number in range(3):
                await asyncio.sleep(0.8)
                marathon.put_app(marathon_app(f"/other{number}", free_port(), {"HAPROXY_GROUP": "external"}))

        results, _ = await asyncio.gather(load(session, url), add_apps())
        failures = [result for result in results if result != "first"]
        assert failures == [], f"{len(failures)} of {len(results)} requests failed: {failures[:5]}"
        assert lb.haproxy.reloads >= reloads + 2  # the new apps needed reloads (rate-limited, maybe merged)
