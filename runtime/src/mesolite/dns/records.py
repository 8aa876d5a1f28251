"""The records of the Mesos domain, generated from a master's `/master/state` as Mesos-DNS generates them.

Names (`<domain>` is `mesos` by default; every name is absolute and lower case):

- `<task>.<framework>.<domain>` A/AAAA: each RUNNING task's IP (from `IPSources`: the container's network
  info, then its agent's); `<task>.<framework>.slave.<domain>` A: the agent's IP;
- `<task>-<hash>-<agent>.<framework>[.slave].<domain>`: the same, one name per task (`<hash>` is 5 z-base-32
  characters of the task id's SHA-1, `<agent>` the agent id's last part: `nginx-jhy6r-s1.marathon.mesos`);
- `_<task>._tcp|_udp.<framework>[.slave].<domain>` SRV: one per host port of the task (its `ports` resources),
  pointing at `<task>-<hash>-<agent>.<framework>.slave.<domain>`; with DiscoveryInfo, the discovery ports too
  (`_<port name>._<task>._<protocol>.<framework>.<domain>` for named ports);
- `leader.<domain>` and `master.<domain>`, `masterN.<domain>` A; `_leader._tcp|_udp.<domain>` SRV;
- `slave.<domain>` A for every agent, `_slave._tcp.<domain>` SRV; `<framework>.<domain>` A where the
  framework's host is an IP (Mesos-DNS also looks host names up; here no lookup blocks the refresh);
- the server's own name (`SOAMname`, `ns1.mesos.`) A: the listener's addresses.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mesolite.dns.labels import LabelRule, agent_id_tail, domain_fragment, rfc952_label, rfc1123_label, task_id_hash

log = logging.getLogger(__name__)

RUNNING = "TASK_RUNNING"
DOCKER_IP_LABEL = "Docker.NetworkSettings.IPAddress"
MESOS_IP_LABEL = "MesosContainerizer.NetworkSettings.IPAddress"


@dataclass(frozen=True)
class ServiceTarget:
    """One SRV answer: the target host name (absolute) and port."""

    host: str
    port: int


@dataclass
class RecordSet:
    """Every name of the domain and what it resolves to. Insertion-ordered, duplicates dropped (as a set)."""

    a: dict[str, list[str]] = field(default_factory=dict)
    aaaa: dict[str, list[str]] = field(default_factory=dict)
    srv: dict[str, list[ServiceTarget]] = field(default_factory=dict)
    # /v1/enumerate: [{"name": framework, "tasks": [{"name", "id", "records": [{"name", "host", "rtype"}]}]}]
    frameworks: list[dict[str, Any]] = field(default_factory=list)

    def add_address(self, name: str, address: str, task: dict[str, Any] | None = None) -> bool:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return False
        table, kind = (self.a, "A") if parsed.version == 4 else (self.aaaa, "AAAA")
        return self._add(table, name, str(parsed), kind, task)

    def add_service(self, name: str, host: str, port: int, task: dict[str, Any] | None = None) -> bool:
        return self._add(self.srv, name, ServiceTarget(host, port), "SRV", task)

    def _add(self, table: dict, name: str, value: Any, kind: str, task: dict[str, Any] | None) -> bool:
        values = table.setdefault(name, [])
        if value in values:
            return False
        values.append(value)
        if task is not None:
            host = f"{value.host}:{value.port}" if isinstance(value, ServiceTarget) else value
            task["records"].append({"name": name, "host": host, "rtype": kind})
        return True

    def has_name(self, name: str) -> bool:
        return name in self.a or name in self.aaaa or name in self.srv

    def addresses(self, name: str) -> list[str]:
        return [*self.a.get(name, ()), *self.aaaa.get(name, ())]

    def axfr_json(self) -> dict[str, dict[str, list[str]]]:
        return {
            "SRVs": {name: [f"{t.host}:{t.port}" for t in targets] for name, targets in self.srv.items()},
            "As": {name: list(values) for name, values in self.a.items()},
            "AAAAs": {name: list(values) for name, values in self.aaaa.items()},
        }

    def signature(self) -> tuple:
        """What answers depend on: equal signatures answer alike (the SOA serial moves only when this changes)."""
        return (
            tuple(sorted((n, tuple(v)) for n, v in self.a.items())),
            tuple(sorted((n, tuple(v)) for n, v in self.aaaa.items())),
            tuple(sorted((n, tuple(sorted((t.host, t.port) for t in v))) for n, v in self.srv.items())),
        )


@dataclass(frozen=True)
class NamingSettings:
    domain: str = "mesos"
    ns_name: str = "ns1.mesos."
    ns_addresses: tuple[str, ...] = ()
    masters: tuple[str, ...] = ()
    ip_sources: tuple[str, ...] = ("netinfo", "mesos", "host")
    enforce_rfc952: bool = False

    @property
    def label_rule(self) -> LabelRule:
        return rfc952_label if self.enforce_rfc952 else rfc1123_label


def pid_address(pid: str) -> tuple[str, str] | None:
    """`(host, port)` of a libprocess pid `name@host:port`, or None."""
    if "@" not in pid:
        return None
    address = pid.split("@", 1)[1]
    host, separator, port = address.rpartition(":")
    return (host.strip("[]"), port) if separator and host else None


def expand_ports(ranges: Any) -> list[int]:
    """The ports of a /state `ports` value (`[31000-31002, 31005-31005]`), one by one, as Mesos-DNS lists them."""
    if not isinstance(ranges, str):
        return []
    inner = ranges.strip().lstrip("[").rstrip("]")
    ports: list[int] = []
    for part in inner.split(","):
        low, _, high = part.strip().partition("-")
        if not low.strip().isdigit():
            continue
        first = int(low)
        last = int(high) if high.strip().isdigit() else first
        # A task holding a huge range would make a huge answer; Mesos-DNS expands it all, here it is bounded.
        ports.extend(range(first, min(last, first + 1023) + 1))
    return ports


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _latest_running_status(task: dict[str, Any]) -> dict[str, Any] | None:
    latest: dict[str, Any] | None = None
    for status in task.get("statuses") or []:
        if not isinstance(status, dict) or status.get("state") != RUNNING:
            continue
        if latest is None or float(status.get("timestamp") or 0) > float(latest.get("timestamp") or 0):
            latest = status
    return latest


def _status_label_ips(status: dict[str, Any], key: str) -> list[str]:
    labels = status.get("labels") or []
    if isinstance(labels, dict):  # the protobuf form {"labels": [...]}
        labels = labels.get("labels") or []
    return [str(label.get("value", "")) for label in labels if isinstance(label, dict) and label.get("key") == key]


def _network_info_ips(status: dict[str, Any]) -> list[str]:
    ips = []
    for info in (status.get("container_status") or {}).get("network_infos") or []:
        addresses = info.get("ip_addresses") or []
        if addresses:
            ips += [str(address.get("ip_address", "")) for address in addresses if isinstance(address, dict)]
        elif info.get("ip_address"):
            ips.append(str(info["ip_address"]))
    return ips


def task_ips(task: dict[str, Any], agent_ips: list[str], sources: Iterable[str]) -> list[str]:
    """The task's IPs from the first source (in `IPSources` order) that has any, as Mesos-DNS picks them."""
    status = _latest_running_status(task)
    for source in sources:
        if source == "host":
            found = [ip for ip in agent_ips if _is_ip(ip)]
        elif status is None:
            found = []
        elif source == "netinfo":
            found = [ip for ip in _network_info_ips(status) if _is_ip(ip)]
        elif source == "mesos":
            found = [ip for ip in _status_label_ips(status, MESOS_IP_LABEL) if _is_ip(ip)]
        elif source == "docker":
            found = [ip for ip in _status_label_ips(status, DOCKER_IP_LABEL) if _is_ip(ip)]
        else:
            found = []
        if found:
            return found
    return []


def generate_records(state: dict[str, Any], settings: NamingSettings) -> RecordSet:
    """The RecordSet of one `/master/state` document. Malformed parts are skipped, never fatal."""
    records = RecordSet()
    tail = f".{settings.domain}."
    rule = settings.label_rule
    _framework_records(records, state, tail, rule)
    agent_ips = _agent_records(records, state, tail)
    for address in settings.ns_addresses:
        records.add_address(settings.ns_name, address)
    _master_records(records, str(state.get("leader") or ""), settings.masters, tail)
    for framework in _objects(state.get("frameworks")):
        enumerated: dict[str, Any] = {"name": str(framework.get("name", "")), "tasks": []}
        records.frameworks.append(enumerated)
        framework_name = domain_fragment(str(framework.get("name", "")), rule)
        for task in _objects(framework.get("tasks")):
            ips = agent_ips.get(str(task.get("slave_id") or task.get("agent_id") or ""))
            if ips is None or task.get("state") != RUNNING:
                continue
            entry = {"name": str(task.get("name", "")), "id": str(task.get("id", "")), "records": []}
            enumerated["tasks"].append(entry)
            _task_records(records, task, framework_name, ips, settings, tail, entry)
    return records


def _objects(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _framework_records(records: RecordSet, state: dict[str, Any], tail: str, rule: LabelRule) -> None:
    for framework in _objects(state.get("frameworks")):
        pid = pid_address(str(framework.get("pid") or ""))
        host, port = pid if pid else (str(framework.get("hostname") or ""), "")
        if not _is_ip(host):
            continue
        name = domain_fragment(str(framework.get("name", "")), rule)
        if not name:
            continue
        records.add_address(name + tail, host)
        if port.isdigit():
            records.add_service(f"_framework._tcp.{name}{tail}", name + tail, int(port))


def _agent_records(records: RecordSet, state: dict[str, Any], tail: str) -> dict[str, list[str]]:
    """`slave.<domain>` records; returns each agent's IPs by agent id (its host name when not an IP)."""
    agent_ips: dict[str, list[str]] = {}
    for agent in _objects(state.get("slaves")):
        pid = pid_address(str(agent.get("pid") or ""))
        if pid is None:
            continue
        host, port = pid
        if _is_ip(host):
            records.add_address("slave" + tail, host)
            if port.isdigit():
                records.add_service("_slave._tcp" + tail, "slave" + tail, int(port))
            agent_ips[str(agent.get("id", ""))] = [host]
        else:
            agent_ips[str(agent.get("id", ""))] = [domain_fragment(host)]
    return agent_ips


def _master_records(records: RecordSet, leader: str, masters: tuple[str, ...], tail: str) -> None:
    address = pid_address(leader)
    if address is None or not _is_ip(address[0]):
        return
    ip, port = address
    leader_address = f"{ip}:{port}"
    records.add_address("leader" + tail, ip)
    records.add_address("master" + tail, ip)
    if port.isdigit():
        records.add_service("_leader._tcp" + tail, "leader" + tail, int(port))
        records.add_service("_leader._udp" + tail, "leader" + tail, int(port))
    index = 0
    leader_numbered = False
    for master in masters:
        master_ip = master.rpartition(":")[0].strip("[]")
        if not _is_ip(master_ip):
            continue
        if master != leader_address and not records.add_address("master" + tail, master_ip):
            continue  # a master listed twice
        if master == leader_address and leader_numbered:
            continue
        records.add_address(f"master{index}{tail}", master_ip)
        index += 1
        leader_numbered = leader_numbered or master == leader_address
    if not leader_numbered:
        records.add_address(f"master{index}{tail}", ip)


def _task_records(
    records: RecordSet,
    task: dict[str, Any],
    framework_name: str,
    agent_ips: list[str],
    settings: NamingSettings,
    tail: str,
    entry: dict[str, Any],
) -> None:
    rule = settings.label_rule
    discovery = task.get("discovery") if isinstance(task.get("discovery"), dict) else {}
    ips = task_ips(task, agent_ips, settings.ip_sources)
    names = [rule(str(task.get("name", "")))]
    if discovery.get("name"):
        # Mesos-DNS generates both the raw (legacy) and the sanitised DiscoveryInfo name; the raw one only
        # where it is a usable label.
        sanitised = rule(str(discovery["name"]))
        raw = str(discovery["name"]).lower()
        names = [raw, sanitised] if raw != sanitised and rule(raw) == raw else [sanitised]
    for task_name in names:
        if not task_name:
            continue
        canonical = (
            f"{task_name}-{task_id_hash(str(task.get('id', '')))}-{agent_id_tail(str(task.get('slave_id', '')))}"
        )
        canonical += f".{framework_name}"
        short = f"{task_name}.{framework_name}"
        for ip in ips:
            records.add_address(short + tail, ip, entry)
            records.add_address(canonical + tail, ip, entry)
        for ip in agent_ips:
            records.add_address(f"{short}.slave{tail}", ip, entry)
            records.add_address(f"{canonical}.slave{tail}", ip, entry)
        agent_target = f"{canonical}.slave{tail}"
        subdomains = [".slave"] if discovery.get("name") else [".slave", ""]
        resources = task.get("resources") if isinstance(task.get("resources"), dict) else {}
        for port in expand_ports(resources.get("ports")):
            for protocol in ("tcp", "udp"):
                for subdomain in subdomains:
                    name = f"_{task_name}._{protocol}.{framework_name}{subdomain}{tail}"
                    records.add_service(name, agent_target, port, entry)
        if not discovery.get("name"):
            continue
        ports = (discovery.get("ports") or {}).get("ports") or []
        for port in _objects(ports):
            number = port.get("number")
            if not isinstance(number, int) or not 0 < number < 65536:
                continue
            protocol = rule(str(port.get("protocol") or ""))
            protocols = [protocol] if protocol else ["tcp", "udp"]
            port_name = rule(str(port.get("name") or ""))
            for each in protocols:
                name = f"_{task_name}._{each}.{framework_name}{tail}"
                records.add_service(name, canonical + tail, number, entry)
                if port_name:
                    records.add_service(f"_{port_name}.{name}", canonical + tail, number, entry)
