"""Mesos-DNS's `config.json`, read the way Mesos-DNS reads it, so that its documentation applies.

Keys match case-insensitively (Go's `encoding/json` does, so `httpon`, `HttpOn` and `httpOn` are one key);
unknown keys are reported and ignored, as Mesos-DNS ignores them. Defaults are Mesos-DNS's except:

- `refreshSeconds` defaults to 1 (Mesos-DNS: 60) and may be a fraction: the master's state is read that often
  (and at once when ZooKeeper names a new leader), so a task resolves within about a second of TASK_RUNNING;
- `resolvers` defaults to the `nameserver` lines of /etc/resolv.conf (Mesos-DNS: 8.8.8.8), never to a
  public resolver nobody configured.

Not supported: `zoneResolvers` is read and honoured; `mesosAuthentication: "iam"` and `IAMConfigFile` are
refused (only `basic`), and `IPSources` `mesos`/`docker` read the task status labels as Mesos-DNS does.
"""

from __future__ import annotations

import ipaddress
import json
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mesolite.security.credentials import Credential

RESOLV_CONF = Path("/etc/resolv.conf")
DNS_PORT = 53
IP_SOURCES = ("host", "mesos", "docker", "netinfo")


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the key."""


@dataclass
class DnsConfig:
    """The settings, named as Mesos-DNS's Go `Config` names them (its `/v1/config` shows these names)."""

    zk: str = ""
    masters: list[str] = field(default_factory=list)
    refresh_seconds: float = 1.0
    state_timeout_seconds: float = 300.0
    zk_detection_timeout: float = 30.0
    ttl: int = 60
    domain: str = "mesos"
    port: int = DNS_PORT
    resolvers: list[str] = field(default_factory=list)
    zone_resolvers: dict[str, list[str]] = field(default_factory=dict)
    timeout: float = 5.0
    listener: str = "0.0.0.0"
    http_listener: str = "0.0.0.0"
    http_port: int = 8123
    dns_on: bool = True
    http_on: bool = True
    external_on: bool = True
    recurse_on: bool = True
    enforce_rfc952: bool = False
    set_truncate_bit: bool = True
    enumeration_on: bool = True
    srv_record_default_weight: int = 1
    soa_mname: str = "ns1.mesos"
    soa_rname: str = "root.ns1.mesos"
    soa_serial: int = field(default_factory=lambda: int(time.time()) & 0xFFFFFFFF)
    soa_refresh: int = 60
    soa_retry: int = 600
    soa_expire: int = 86400
    soa_minttl: int = 60
    ip_sources: list[str] = field(default_factory=lambda: ["netinfo", "mesos", "host"])
    mesos_https_on: bool = False
    ca_cert_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    mesos_authentication: str = ""
    mesos_credentials: Credential | None = None
    file: str = ""

    # --- derived ---------------------------------------------------------------------------------------

    @property
    def zone(self) -> str:
        """The domain as an absolute name: `mesos.`."""
        return self.domain + "."

    def public_json(self) -> dict[str, Any]:
        """`/v1/config`: Mesos-DNS's key names; the ZooKeeper password and the Mesos secret left out."""
        from mesolite.zookeeper.url import parse_zookeeper_url

        zk = self.zk
        if zk:
            try:
                zk = str(parse_zookeeper_url(zk))
            except ValueError:
                zk = "(invalid)"
        credentials = None
        if self.mesos_credentials is not None:
            credentials = {"principal": self.mesos_credentials.principal, "secret": "***"}
        return {
            "RefreshSeconds": self.refresh_seconds,
            "Port": self.port,
            "Timeout": self.timeout,
            "StateTimeoutSeconds": self.state_timeout_seconds,
            "ZkDetectionTimeout": self.zk_detection_timeout,
            "HttpPort": self.http_port,
            "TTL": self.ttl,
            "SRVRecordDefaultWeight": self.srv_record_default_weight,
            "SOASerial": self.soa_serial,
            "SOARefresh": self.soa_refresh,
            "SOARetry": self.soa_retry,
            "SOAExpire": self.soa_expire,
            "SOAMinttl": self.soa_minttl,
            "SOAMname": self.soa_mname,
            "SOARname": self.soa_rname,
            "Masters": self.masters or None,
            "ZoneResolvers": self.zone_resolvers,
            "Resolvers": self.resolvers,
            "IPSources": self.ip_sources,
            "Zk": zk,
            "Domain": self.domain,
            "File": self.file,
            "Listener": self.listener,
            "HTTPListener": self.http_listener,
            "RecurseOn": self.recurse_on,
            "DnsOn": self.dns_on,
            "HttpOn": self.http_on,
            "ExternalOn": self.external_on,
            "EnforceRFC952": self.enforce_rfc952,
            "SetTruncateBit": self.set_truncate_bit,
            "EnumerationOn": self.enumeration_on,
            "MesosHTTPSOn": self.mesos_https_on,
            "CACertFile": self.ca_cert_file,
            "CertFile": self.cert_file,
            "KeyFile": self.key_file,
            "MesosCredentials": credentials,
            "MesosAuthentication": self.mesos_authentication,
        }


# config.json key (lower case) -> DnsConfig attribute. Go matches keys case-insensitively, and Mesos-DNS's
# JSON tags (`HttpPort`, `DnsOn`, `HttpOn`) are only other spellings of the same lower-case keys.
_KEYS = {
    "zk": "zk",
    "masters": "masters",
    "refreshseconds": "refresh_seconds",
    "statetimeoutseconds": "state_timeout_seconds",
    "zkdetectiontimeout": "zk_detection_timeout",
    "ttl": "ttl",
    "domain": "domain",
    "port": "port",
    "resolvers": "resolvers",
    "zoneresolvers": "zone_resolvers",
    "timeout": "timeout",
    "listener": "listener",
    "httplistener": "http_listener",
    "httpport": "http_port",
    "dnson": "dns_on",
    "httpon": "http_on",
    "externalon": "external_on",
    "recurseon": "recurse_on",
    "enforcerfc952": "enforce_rfc952",
    "settruncatebit": "set_truncate_bit",
    "enumerationon": "enumeration_on",
    "srvrecorddefaultweight": "srv_record_default_weight",
    "soamname": "soa_mname",
    "soarname": "soa_rname",
    "soaserial": "soa_serial",
    "soarefresh": "soa_refresh",
    "soaretry": "soa_retry",
    "soaexpire": "soa_expire",
    "soaminttl": "soa_minttl",
    "ipsources": "ip_sources",
    "mesoshttpson": "mesos_https_on",
    "cacertfile": "ca_cert_file",
    "certfile": "cert_file",
    "keyfile": "key_file",
    "mesosauthentication": "mesos_authentication",
    "mesoscredentials": "mesos_credentials",
}
_TYPES = {item.name: item.type for item in fields(DnsConfig)}


def _converted(key: str, attribute: str, value: Any) -> Any:
    kind = _TYPES[attribute]
    if attribute == "mesos_credentials":
        if not isinstance(value, dict) or not isinstance(value.get("principal"), str):
            raise ConfigError(f"{key} must be an object with 'principal' and 'secret'")
        return Credential(value["principal"], str(value.get("secret", "")))
    if kind in ("bool",):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, not {value!r}")
        return value
    if kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{key} must be a number >= 0, not {value!r}")
        return int(value) if kind == "int" else float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, not {value!r}")
        return value
    if attribute == "zone_resolvers":
        if not isinstance(value, dict) or not all(_string_list(v) for v in value.values()):
            raise ConfigError(f"{key} must map zones to lists of resolver addresses")
        return {str(zone).strip(".").lower(): list(servers) for zone, servers in value.items()}
    if not _string_list(value):
        raise ConfigError(f"{key} must be a list of strings, not {value!r}")
    return list(value)


def _string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def parse_config(document: Any, file: str = "", warnings: list[str] | None = None) -> DnsConfig:
    """A DnsConfig from a decoded config.json (`warnings` collects the ignored keys); `ConfigError` if unusable."""
    if not isinstance(document, dict):
        raise ConfigError("the configuration must be a JSON object")
    config = DnsConfig(file=file)
    for key, value in document.items():
        attribute = _KEYS.get(str(key).lower())
        if attribute is None:
            if warnings is not None:
                warnings.append(f"ignoring unknown configuration key '{key}'")
            continue
        setattr(config, attribute, _converted(key, attribute, value))
    return validated(config)


def load_config(path: str, warnings: list[str] | None = None) -> DnsConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the configuration {path}: {error}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not valid JSON: {error.msg} (line {error.lineno})") from None
    return parse_config(document, path, warnings)


def resolvers_from_resolv_conf(path: Path = RESOLV_CONF) -> list[str]:
    """The `nameserver` addresses of a resolv.conf, in order; loopback ones are kept (a local cache)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    servers = []
    for line in lines:
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            servers.append(words[1])
    return servers


def resolver_address(text: str) -> tuple[str, int]:
    """`ip` or `ip:port` (`[v6]:port`) of an upstream resolver; `ConfigError` for anything else."""
    value = text.strip()
    host, port = value, DNS_PORT
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else DNS_PORT
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
        if not port_text.isdigit():
            raise ConfigError(f"resolver '{text}': the port must be a number")
        port = int(port_text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"resolver '{text}' is not an IP address (or ip:port)") from None
    if not 0 < port < 65536:
        raise ConfigError(f"resolver '{text}': port out of range")
    return host, port


def _fqdn(name: str) -> str:
    return name.lower().rstrip(".") + "."


def validated(config: DnsConfig) -> DnsConfig:
    """Mesos-DNS's normalisation (lower-case domain, absolute SOA names, `@` in SOARname) and checks."""
    config.domain = config.domain.lower().strip(".")
    labels = config.domain.split(".")
    if not config.domain or any(
        not label or label[0] == "-" or label[-1] == "-" or not all(c.isalnum() or c == "-" for c in label)
        for label in labels
    ):
        raise ConfigError(f"domain '{config.domain}' is not a valid domain name")
    config.soa_mname = _fqdn(config.soa_mname)
    config.soa_rname = _fqdn(config.soa_rname.replace("@", "."))
    if not config.zk and not config.masters:
        raise ConfigError('set zk (zk://host:port/mesos) or masters (["host:port", ...]), or both')
    if config.zk:
        from mesolite.zookeeper.url import parse_zookeeper_url

        try:
            parse_zookeeper_url(config.zk)
        except ValueError as error:
            raise ConfigError(f"zk: {error}") from None
    for master in config.masters:
        host, separator, port = master.rpartition(":")
        if not separator or not host or not port.isdigit():
            raise ConfigError(f"masters: '{master}' is not host:port")
    if not config.resolvers:
        config.resolvers = resolvers_from_resolv_conf()
    for resolver in [*config.resolvers, *(s for servers in config.zone_resolvers.values() for s in servers)]:
        resolver_address(resolver)
    unknown_sources = sorted(set(config.ip_sources) - set(IP_SOURCES))
    if unknown_sources:
        raise ConfigError(f"IPSources: unknown source(s) {', '.join(unknown_sources)} (known: {', '.join(IP_SOURCES)})")
    if config.mesos_authentication not in ("", "basic"):
        raise ConfigError(f"mesosAuthentication '{config.mesos_authentication}' is not supported (only '' or 'basic')")
    if config.mesos_authentication == "basic" and config.mesos_credentials is None:
        raise ConfigError("mesosAuthentication 'basic' needs mesosCredentials (or --mesos_credential)")
    if not 0 <= config.port < 65536 or not 0 <= config.http_port < 65536:
        raise ConfigError("port and httpport must be 0-65535")
    if config.refresh_seconds <= 0:
        raise ConfigError("refreshSeconds must be above 0")
    return config
