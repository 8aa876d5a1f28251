"""`mesolite dns`: a Mesos-DNS-compatible DNS server (systemd unit `mesos-dns`).

It reads Mesos-DNS's `config.json` (`--config`, Mesos-DNS's `-config`); a few flags override it, for units and
tests that would rather not write a file. Flags also come from `MESOS_DNS_<FLAG>` variables. The Mesos
credential may come from a Mesos `--credential` file (`--mesos_credential`) rather than the config file, and
https to the master uses `CACertFile`/`CertFile`/`KeyFile` from the config or else the `LIBPROCESS_SSL_*`
variables (as every mesolite client does).
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import json
import logging
import socket
import ssl
import struct
import sys
from pathlib import Path
from typing import Any

from mesolite.dns.answers import Zone
from mesolite.dns.config import ConfigError, DnsConfig, parse_config
from mesolite.dns.follower import StateFollower
from mesolite.dns.forwarding import Forwarder
from mesolite.dns.http_api import create_http_app
from mesolite.dns.records import NamingSettings, RecordSet
from mesolite.dns.server import DnsServer, Resolver
from mesolite.flags import Flag, FlagSet
from mesolite.http_server import start_http_server
from mesolite.process import configure_logging, set_on_termination
from mesolite.security.credentials import CredentialsError, load_credential
from mesolite.security.tls import TlsError, TlsSettings

log = logging.getLogger("mesolite.dns")

DEFAULT_CONFIG = "/etc/mesos-dns/config.json"


def _list(text: str) -> list[str]:
    """A JSON list, or comma-separated words."""
    stripped = text.strip()
    if stripped.startswith("["):
        value = json.loads(stripped)
        if not isinstance(value, list):
            raise ValueError("expected a JSON list")
        return [str(item) for item in value]
    return [item.strip() for item in stripped.split(",") if item.strip()]


FLAGS = FlagSet(
    service_name="mesos-dns",
    env_prefix="MESOS_DNS_",
    description="A Mesos-DNS-compatible DNS server: names for the tasks, masters and agents of the cluster.",
    flags=[
        Flag("config", str, DEFAULT_CONFIG, "Mesos-DNS's config.json (optional at the default path)"),
        Flag("zk", str, None, "Overrides the config's zk: zk://host:port/mesos"),
        Flag("masters", _list, None, "Overrides the config's masters: host:port[,host:port]"),
        Flag("port", int, None, "Overrides the config's port (DNS, UDP and TCP)"),
        Flag("httpport", int, None, "Overrides the config's httpport"),
        Flag("listener", str, None, "Overrides the config's listener (the DNS address)"),
        Flag("http_listener", str, None, "Overrides the config's HTTPListener"),
        Flag("domain", str, None, "Overrides the config's domain"),
        Flag("resolvers", _list, None, "Overrides the config's resolvers: ip[:port][,ip[:port]]"),
        Flag("refresh_seconds", float, None, "Overrides the config's refreshSeconds"),
        Flag("mesos_credential", str, None, "A Mesos --credential file (principal and secret) for the master"),
        Flag("logging_level", str, "info", "debug, info, warning or error"),
    ],
)

_OVERRIDES = {
    "zk": "zk",
    "masters": "masters",
    "port": "port",
    "httpport": "httpport",
    "listener": "listener",
    "http_listener": "HTTPListener",
    "domain": "domain",
    "resolvers": "resolvers",
    "refresh_seconds": "refreshSeconds",
}


def build_config(flags: Any, warnings: list[str]) -> DnsConfig:
    """The config file (when there is one) with the flags' overrides applied."""
    path = Path(flags.config)
    document: dict[str, Any] = {}
    if path.exists() or flags.config != DEFAULT_CONFIG:
        document = _raw(path)
    for flag, key in _OVERRIDES.items():
        value = getattr(flags, flag)
        if value is not None:
            document = {k: v for k, v in document.items() if k.lower() != key.lower()}
            document[key] = value
    if flags.mesos_credential:
        credential = load_credential(flags.mesos_credential)
        document["mesosCredentials"] = {"principal": credential.principal, "secret": credential.secret}
        if not any(key.lower() == "mesosauthentication" for key in document):
            document["mesosAuthentication"] = "basic"
    return parse_config(document, str(path) if path.exists() else "", warnings)


def _raw(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the configuration {path}: {error}") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not valid JSON: {error.msg} (line {error.lineno})") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: the configuration must be a JSON object")
    return document


def interface_addresses() -> list[str]:
    """The IPv4 addresses of this host's interfaces, loopback left out (Mesos-DNS's records for `0.0.0.0`)."""
    addresses = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _index, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                reply = fcntl.ioctl(probe.fileno(), 0x8915, request)  # SIOCGIFADDR
            except OSError:
                continue  # no IPv4 address on this interface
            address = socket.inet_ntoa(array.array("B", reply[20:24]).tobytes())
            if not address.startswith("127."):
                addresses.append(address)
    return addresses


def client_ssl_context(config: DnsConfig) -> ssl.SSLContext | None:
    """The context for https to the masters: the config's CA/certificate, else LIBPROCESS_SSL_*."""
    if config.ca_cert_file or config.cert_file:
        context = ssl.create_default_context(cafile=config.ca_cert_file or None)
        if not config.ca_cert_file:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context.check_hostname = False  # masters are reached by IP, as Mesos-DNS reaches them
        if config.cert_file:
            context.load_cert_chain(config.cert_file, config.key_file or None)
        return context
    settings = TlsSettings.from_environment()
    if config.mesos_https_on or settings.enabled or settings.has_ca:
        return settings.client_context()
    return None


class DnsService:
    def __init__(self, config: DnsConfig) -> None:
        self.config = config
        self.records = RecordSet()
        self.zone = Zone(
            domain=config.domain,
            ttl=config.ttl,
            soa_mname=config.soa_mname,
            soa_rname=config.soa_rname,
            soa_serial=config.soa_serial,
            soa_refresh=config.soa_refresh,
            soa_retry=config.soa_retry,
            soa_expire=config.soa_expire,
            soa_minttl=config.soa_minttl,
            srv_weight=config.srv_record_default_weight,
            recurse_on=config.recurse_on,
        )
        ns_addresses = interface_addresses() if config.listener in ("0.0.0.0", "") else [config.listener]
        self.naming = NamingSettings(
            domain=config.domain,
            ns_name=config.soa_mname,
            ns_addresses=tuple(ns_addresses),
            masters=tuple(config.masters),
            ip_sources=tuple(config.ip_sources),
            enforce_rfc952=config.enforce_rfc952,
        )
        forwarder = None
        if config.external_on:
            forwarder = Forwarder.from_config(config.resolvers, config.zone_resolvers, config.timeout)
        self.resolver = Resolver(self.zone, lambda: self.records, forwarder, config.set_truncate_bit)
        self.follower = StateFollower(
            zk=config.zk,
            masters=config.masters,
            naming=self.naming,
            on_records=self.replace_records,
            refresh_seconds=config.refresh_seconds,
            state_timeout=config.state_timeout_seconds,
            https=config.mesos_https_on,
            ssl_context=client_ssl_context(config),
            credential=config.mesos_credentials if config.mesos_authentication == "basic" else None,
        )

    def replace_records(self, records: RecordSet) -> None:
        """Swap in a new record set (one assignment: a query sees the old set or the new, never a mix)."""
        if records.signature() != self.records.signature():
            self.zone.soa_serial = (self.zone.soa_serial + 1) & 0xFFFFFFFF
            log.info(
                "records changed (serial %d): %d A, %d AAAA, %d SRV names",
                self.zone.soa_serial,
                len(records.a),
                len(records.aaaa),
                len(records.srv),
            )
        self.records = records

    async def run(self) -> None:
        stopped = asyncio.Event()
        set_on_termination(stopped)
        dns_server = http_runner = None
        if self.config.dns_on:
            dns_server = DnsServer(self.resolver, self.config.listener or "0.0.0.0", self.config.port)
            await dns_server.start()
            log.info("DNS on %s:%d (UDP and TCP) for %s.", self.config.listener, dns_server.port, self.config.domain)
        if self.config.http_on:
            app = create_http_app(self.config, lambda: self.records, lambda: self.zone.soa_serial)
            http_runner = await start_http_server(
                app, self.config.http_listener, self.config.http_port, shutdown_timeout=2
            )
            log.info("HTTP API on %s:%d", self.config.http_listener, self.config.http_port)
        follower = asyncio.create_task(self.follower.run(), name="dns-follower")
        try:
            await stopped.wait()
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
            if dns_server is not None:
                await dns_server.stop()
            if http_runner is not None:
                await http_runner.cleanup()


def main(argv: list[str]) -> int:
    flags = FLAGS.load(argv)
    configure_logging(flags.logging_level)
    warnings: list[str] = []
    try:
        config = build_config(flags, warnings)
    except (ConfigError, CredentialsError, ValueError) as error:
        print(f"mesos-dns: {error}", file=sys.stderr)
        return 2
    for warning in warnings:
        log.warning("%s", warning)
    try:
        service = DnsService(config)
        asyncio.run(service.run())
    except (TlsError, OSError) as error:
        log.error("%s", error)
        return 1
    return 0
