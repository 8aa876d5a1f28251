"""Mesos-DNS's HTTP API (`httpon`, port `httpport`), its response shapes kept:

- `GET /v1/version`: `{"Service": "Mesos-DNS", "Version": …, "URL": …}`;
- `GET /v1/config`: the configuration under Mesos-DNS's Go names (`RefreshSeconds`, `Zk`, …; secrets hidden);
- `GET /v1/hosts/{host}`: `[{"host": "nginx.marathon.mesos.", "ip": "…"}, …]` (A and AAAA);
- `GET /v1/services/{service}`: `[{"service": …, "host": …, "ip": …, "port": "31000"}, …]` (SRV, each target's
  first address; the port a string, as Mesos-DNS writes it);
- `GET /v1/hosts/{host}/ports`: 501, as in Mesos-DNS;
- `GET /v1/enumerate`, `GET /v1/axfr` when `EnumerationOn`.

Names nobody knows answer `[{"host": "", "ip": ""}]` (one empty record, as Mesos-DNS answers), not 404.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from mesolite import __version__
from mesolite.dns.config import DnsConfig
from mesolite.dns.records import RecordSet

MESOS_DNS_URL = "https://github.com/mesosphere/mesos-dns"
# The Mesos-DNS release whose behaviour this follows; clients check the major version.
MESOS_DNS_COMPATIBLE_VERSION = "0.7.0"


def _absolute(name: str) -> str:
    name = name.lower().replace(".*", "")
    return name if name.endswith(".") else name + "."


def create_http_app(config: DnsConfig, records: Callable[[], RecordSet], serial: Callable[[], int]) -> web.Application:
    async def version(_request: web.Request) -> web.Response:
        return web.json_response(
            {
                "Service": "Mesos-DNS",
                "Version": f"{MESOS_DNS_COMPATIBLE_VERSION} (mesolite {__version__})",
                "URL": MESOS_DNS_URL,
            }
        )

    async def show_config(_request: web.Request) -> web.Response:
        document = config.public_json()
        document["SOASerial"] = serial()
        return web.json_response(document)

    async def hosts(request: web.Request) -> web.Response:
        name = _absolute(request.match_info["host"])
        found = [{"host": name, "ip": ip} for ip in records().addresses(name)]
        return web.json_response(found or [{"host": "", "ip": ""}])

    async def ports(_request: web.Request) -> web.Response:
        return web.Response(status=501, text="To be implemented...")

    async def services(request: web.Request) -> web.Response:
        raw = request.match_info["service"]
        name = _absolute(raw)
        current = records()
        found = []
        for target in current.srv.get(name, []):
            for table in (current.a, current.aaaa):
                if table.get(target.host):
                    found.append(
                        {"service": raw, "host": target.host, "ip": table[target.host][0], "port": str(target.port)}
                    )
        return web.json_response(found or [{"service": "", "host": "", "ip": "", "port": ""}])

    async def enumerate_records(_request: web.Request) -> web.Response:
        return web.json_response({"frameworks": records().frameworks})

    async def axfr(_request: web.Request) -> web.Response:
        return web.json_response(
            {
                "Records": records().axfr_json(),
                "Serial": serial(),
                "Mname": config.soa_mname,
                "Rname": config.soa_rname,
                "TTL": config.ttl,
                "RefreshSeconds": config.refresh_seconds,
                "Domain": config.domain,
            }
        )

    app = web.Application(client_max_size=4096)  # every route is a GET: no body is ever read
    app.router.add_get("/v1/version", version)
    app.router.add_get("/v1/config", show_config)
    app.router.add_get("/v1/hosts/{host}", hosts)
    app.router.add_get("/v1/hosts/{host}/ports", ports)
    app.router.add_get("/v1/services/{service}", services)
    if config.enumeration_on:
        app.router.add_get("/v1/enumerate", enumerate_records)
        app.router.add_get("/v1/axfr", axfr)
    return app
