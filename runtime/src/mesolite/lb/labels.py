"""marathon-lb's label contract: which apps an LB exposes and how each service port is served.

An app is exposed when its `HAPROXY_GROUP` label (several groups comma-separated) names one of the LB's groups
(`--group`, default `external`; `*` matches every app, with or without a group), or when it carries no group at
all and the LB exposes ungrouped apps. Each service port n is then configured by `HAPROXY_{n}_*` labels:

| label | meaning |
|---|---|
| `HAPROXY_{n}_ENABLED` | `false` hides the port; with `--strict_mode` only ports with `true` are exposed |
| `HAPROXY_{n}_PORT` | the frontend's port instead of the service port |
| `HAPROXY_{n}_BIND_ADDR` | the frontend's address instead of the LB's `--bind_address` |
| `HAPROXY_{n}_MODE` | `http` or `tcp`; default `http` when the port has a vhost or an HTTP health check |
| `HAPROXY_{n}_BALANCE` | HAProxy's `balance` algorithm (default `roundrobin`), passed through as written |
| `HAPROXY_{n}_VHOST` | host names (comma-separated) routed to this port on the LB's HTTP port (:80) |
| `HAPROXY_{n}_PATH` | only requests whose path begins with this are routed by the vhost rules |
| `HAPROXY_{n}_STICKY` | `true`: a cookie keeps a client on one server |
| `HAPROXY_{n}_REDIRECT_TO_HTTPS` | `true`: the vhost answers plain HTTP with a redirect to https |
| `HAPROXY_{n}_SSL_CERT` | a PEM (certificate + key) for the vhosts on the HTTPS port (:443, by SNI) |
| `HAPROXY_{n}_BACKEND_WEIGHT` | vhost/path rules of heavier ports are tried first (default 0) |

A value that is not usable (a port that is not a number, a line break anywhere) drops that service port with a
`LabelError` that names the app and the label; values HAProxy itself judges (the balance algorithm) are passed
through, and a render HAProxy rejects never replaces the running configuration (see `haproxy.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

GROUP_LABEL = "HAPROXY_GROUP"
ALL_GROUPS = "*"
TRUE_WORDS = {"true", "1", "yes", "on"}
FALSE_WORDS = {"false", "0", "no", "off"}
HTTP_HEALTH_CHECK_PROTOCOLS = {"HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS"}
# HAProxy reads its configuration line by line and words by whitespace: a label must not smuggle in a line of
# its own, and names (hosts, paths, certificate files) must be one word.
_ONE_LINE = re.compile(r"^[^\x00-\x1f\x7f]*$")
_ONE_WORD = re.compile(r"^[^\s\x00-\x1f\x7f#]+$")
_HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")


class LabelError(ValueError):
    """A label value that cannot be used; the message names the app, the label and the value."""


@dataclass(frozen=True)
class ServiceSettings:
    """How one service port of one app is served."""

    app_id: str
    index: int
    service_port: int
    bind_address: str
    mode: str
    balance: str = "roundrobin"
    vhosts: tuple[str, ...] = ()
    path: str | None = None
    sticky: bool = False
    redirect_to_https: bool = False
    ssl_certificate: str | None = None
    backend_weight: int = 0

    @property
    def backend(self) -> str:
        """marathon-lb's backend (and frontend) name: the app id with `_` for other characters, and the port."""
        return f"{backend_prefix(self.app_id)}_{self.service_port}"


def backend_prefix(app_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", app_id.strip("/")) or "root"


def _labels(app: dict[str, Any]) -> dict[str, str]:
    labels = app.get("labels") or {}
    return {str(key): str(value) for key, value in labels.items()} if isinstance(labels, dict) else {}


def app_groups(app: dict[str, Any]) -> set[str]:
    value = _labels(app).get(GROUP_LABEL, "")
    return {group.strip() for group in value.split(",") if group.strip()}


def is_exposed(app: dict[str, Any], groups: set[str], expose_ungrouped: bool) -> bool:
    """Whether this LB serves the app at all (marathon-lb's `--group` matching)."""
    own = app_groups(app)
    if ALL_GROUPS in groups:
        return True
    if not own:
        return expose_ungrouped
    return bool(own & groups)


def service_ports(app: dict[str, Any]) -> list[int]:
    """The app's service ports, in port index order, wherever this Marathon version puts them."""
    definitions = app.get("portDefinitions")
    if isinstance(definitions, list) and definitions:
        return [int(entry.get("port") or 0) for entry in definitions if isinstance(entry, dict)]
    ports = app.get("ports")
    if isinstance(ports, list) and ports:
        return [int(port) for port in ports]
    container = app.get("container") or {}
    mappings = container.get("portMappings") or (container.get("docker") or {}).get("portMappings") or []
    return [int(entry.get("servicePort") or 0) for entry in mappings if isinstance(entry, dict)]


def _has_http_health_check(app: dict[str, Any], index: int) -> bool:
    for check in app.get("healthChecks") or []:
        if not isinstance(check, dict) or str(check.get("protocol", "HTTP")).upper() not in HTTP_HEALTH_CHECK_PROTOCOLS:
            continue
        if int(check.get("portIndex") or 0) == index:
            return True
    return False


class _Reader:
    """Reads the `HAPROXY_{n}_*` labels of one service port, with errors that name what is wrong."""

    def __init__(self, app_id: str, labels: dict[str, str], index: int) -> None:
        self.app_id, self.labels, self.index = app_id, labels, index

    def name(self, key: str) -> str:
        return f"HAPROXY_{self.index}_{key}"

    def fail(self, key: str, value: str, expected: str) -> LabelError:
        return LabelError(f"app {self.app_id}: label {self.name(key)}={value!r}: {expected}")

    def text(self, key: str) -> str | None:
        value = self.labels.get(self.name(key))
        if value is None:
            return None
        if not _ONE_LINE.match(value):
            raise self.fail(key, value, "must be one line without control characters")
        return value.strip()

    def word(self, key: str) -> str | None:
        value = self.text(key)
        if value is not None and value and not _ONE_WORD.match(value):
            raise self.fail(key, value, "must be one word (no spaces or '#')")
        return value or None

    def boolean(self, key: str, default: bool) -> bool:
        value = self.text(key)
        if value is None or value == "":
            return default
        if value.lower() in TRUE_WORDS:
            return True
        if value.lower() in FALSE_WORDS:
            return False
        raise self.fail(key, value, "must be true or false")

    def integer(self, key: str, low: int, high: int) -> int | None:
        value = self.text(key)
        if value is None or value == "":
            return None
        if not value.lstrip("-").isdigit() or not low <= int(value) <= high:
            raise self.fail(key, value, f"must be a whole number from {low} to {high}")
        return int(value)


def service_settings(
    app: dict[str, Any], bind_address: str, strict_mode: bool = False
) -> tuple[list[ServiceSettings], list[LabelError]]:
    """The settings of every exposed service port of `app`, and the errors of the ports that were dropped."""
    app_id = str(app.get("id", ""))
    labels = _labels(app)
    settings: list[ServiceSettings] = []
    errors: list[LabelError] = []
    for index, port in enumerate(service_ports(app)):
        reader = _Reader(app_id, labels, index)
        try:
            if not reader.boolean("ENABLED", default=not strict_mode):
                continue
            frontend_port = reader.integer("PORT", 1, 65535) or port
            if not 1 <= frontend_port <= 65535:
                continue  # a port Marathon has not assigned yet (0): nothing to bind
            vhosts = tuple(host.strip().lower() for host in (reader.text("VHOST") or "").split(",") if host.strip())
            for host in vhosts:
                if not _HOST_NAME.match(host):
                    raise reader.fail("VHOST", host, "must be host names separated by commas")
            http_by_default = bool(vhosts) or _has_http_health_check(app, index)
            mode = (reader.text("MODE") or ("http" if http_by_default else "tcp")).lower()
            if mode not in {"http", "tcp"}:
                raise reader.fail("MODE", mode, "must be http or tcp")
            if mode == "tcp" and vhosts:
                raise reader.fail("MODE", mode, "a port with HAPROXY_{n}_VHOST is served in http mode")
            path = reader.word("PATH")
            if path is not None and not path.startswith("/"):
                raise reader.fail("PATH", path, "must begin with /")
            settings.append(
                ServiceSettings(
                    app_id=app_id,
                    index=index,
                    service_port=frontend_port,
                    bind_address=reader.word("BIND_ADDR") or bind_address,
                    mode=mode,
                    balance=reader.text("BALANCE") or "roundrobin",
                    vhosts=vhosts,
                    path=path,
                    sticky=reader.boolean("STICKY", default=False),
                    redirect_to_https=reader.boolean("REDIRECT_TO_HTTPS", default=False),
                    ssl_certificate=reader.word("SSL_CERT"),
                    backend_weight=reader.integer("BACKEND_WEIGHT", -1000000, 1000000) or 0,
                )
            )
        except LabelError as error:
            errors.append(error)
    return settings, errors
