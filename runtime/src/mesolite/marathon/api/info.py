"""/v2/info, /v2/leader, /ping and /metrics."""

from __future__ import annotations

from aiohttp import web

from mesolite import MARATHON_COMPATIBLE_VERSION
from mesolite.marathon.api.context import service_of


async def info(request: web.Request) -> web.Response:
    service = service_of(request)
    flags = service.flags
    marathon = service.marathon
    body = {
        "name": "marathon",
        "version": MARATHON_COMPATIBLE_VERSION,
        "buildref": "mesolite",
        "elected": service.is_leader,
        "leader": service.leader_address,
        "frameworkId": marathon.framework_id if marathon else None,
        "marathon_config": {
            "master": flags.master,
            "hostname": service.hostname,
            "framework_name": flags.framework_name,
            "failover_timeout": int(flags.failover_timeout),
            "checkpoint": True,
            "ha": not flags.disable_ha,
            "local_port_min": flags.local_port_min,
            "local_port_max": flags.local_port_max,
            "mesos_role": flags.mesos_role,
            "mesos_user": service.mesos_user,
            "webui_url": flags.webui_url,
            "task_launch_timeout": int(flags.task_launch_timeout),
            "decline_offer_duration": 120000,
            "leader_proxy_connection_timeout_ms": 5000,
            "leader_proxy_read_timeout_ms": 10000,
            "features": [],
        },
        "zookeeper_config": {
            "zk": service.redacted_zk,
            "zk_hosts": service.zk_url.hosts,
            "zk_path": service.zk_url.path,
            "zk_timeout": int(flags.zk_timeout),
            "zk_session_timeout": int(flags.zk_session_timeout),
            "zk_max_versions": flags.zk_max_versions,
            "zk_max_node_size": flags.zk_max_node_size,
            "zk_compression": False,
        },
        "http_config": {
            "http_port": flags.http_port if service.security.serve_http else None,
            "https_port": flags.https_port if service.security.https_context is not None else None,
        },
        "event_subscriber": None,
    }
    return web.json_response(body)


async def leader(request: web.Request) -> web.Response:
    service = service_of(request)
    if not service.leader_address:
        return web.json_response({"message": "There is no leader"}, status=404)
    if request.method == "DELETE":
        if not service.is_leader:
            return web.json_response({"message": "There is no leader"}, status=404)
        await service.abdicate()
        return web.json_response({"message": "Leadership abdicated"})
    return web.json_response({"leader": service.leader_address})


async def ping(request: web.Request) -> web.Response:
    return web.Response(text="pong", content_type="text/plain", headers={"Cache-Control": "no-cache"})


async def metrics(request: web.Request) -> web.Response:
    service = service_of(request)
    marathon = service.marathon
    gauges = {"service.mesosphere.marathon.leadership.elected": {"value": int(service.is_leader)}}
    if marathon is not None:
        gauges |= {
            "service.mesosphere.marathon.app.count": {"value": len(marathon.apps)},
            "service.mesosphere.marathon.group.count": {"value": len(marathon.group_ids())},
            "service.mesosphere.marathon.task.running.count": {
                "value": sum(1 for t in marathon.tasks.values() if t.is_running)
            },
            "service.mesosphere.marathon.task.staged.count": {
                "value": sum(1 for t in marathon.tasks.values() if t.state == "TASK_STAGING")
            },
            "service.mesosphere.marathon.deployments.active": {"value": len(marathon.deployments)},
            "service.mesosphere.marathon.launchQueue.count": {
                "value": sum(e.count for e in marathon.queue.entries.values())
            },
        }
    gauges["service.mesosphere.marathon.events.subscribers"] = {"value": service.events.subscriber_count}
    body = {"version": "4.0.0", "gauges": gauges, "counters": {}, "histograms": {}, "meters": {}, "timers": {}}
    return web.json_response(body)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v2/info", info)
    router.add_get("/v2/leader", leader)
    router.add_delete("/v2/leader", leader)
    router.add_get("/ping", ping)
    router.add_get("/metrics", metrics)
