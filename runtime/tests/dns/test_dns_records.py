"""Mesos-DNS's names, generated from a `/master/state` captured from a real mesolite master (one agent, one task
`web` of the framework "mesos-execute instance" holding port 31005), and variants of it."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from mesolite.dns.answers import Zone, answer, wire
from mesolite.dns.config import ConfigError, parse_config, resolver_address, resolvers_from_resolv_conf
from mesolite.dns.labels import agent_id_tail, domain_fragment, rfc952_label, rfc1123_label, task_id_hash
from mesolite.dns.records import NamingSettings, RecordSet, ServiceTarget, expand_ports, generate_records

CAPTURED = Path(__file__).parent / "data" / "master_state.json"
AGENT_ID = "333d475e-b7d1-437f-b8f5-c751fea52e60-S0"


def captured_state(agent_ip: str = "10.0.0.2", leader_ip: str = "10.0.0.1", task_ip: str = "172.17.0.5") -> dict:
    """The captured state with distinct addresses: the agent's, the leader's and the task's container IP."""
    state = json.loads(CAPTURED.read_text())
    state["leader"] = state["leader"].replace("127.0.0.1", leader_ip)
    state["slaves"][0]["pid"] = state["slaves"][0]["pid"].replace("127.0.0.1", agent_ip)
    running = state["frameworks"][0]["tasks"][0]["statuses"][-1]
    running["container_status"]["network_infos"][0]["ip_addresses"][0]["ip_address"] = task_ip
    return state


def marathon_state() -> dict:
    """The captured state as if Marathon had launched the task: framework "marathon", app `nginx`, two ports."""
    state = captured_state()
    framework = state["frameworks"][0]
    framework["name"] = "marathon"
    task = framework["tasks"][0]
    task.update(id="nginx.48dccce7-90bc-11e6-ae70-70b3d5800001", name="nginx")
    task["resources"]["ports"] = "[31005-31006]"
    return state


# --- labels --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("apiserver.myservice", "apiserver-myservice"),  # Mesos-DNS's documented example
        ("Nginx", "nginx"),
        ("my_app", "my-app"),
        ("mesos-execute instance", "mesos-executeinstance"),  # other characters are dropped
        ("--web--", "web"),
        ("a" * 70, "a" * 63),
        ("x" * 62 + "-yz", "x" * 62 + "y"),  # cut at 63, the trailing dash trimmed and refilled
        ("日本", ""),
    ],
)
def test_rfc1123_labels_as_mesos_dns_makes_them(name, label):
    assert rfc1123_label(name) == label


def test_rfc952_labels_trim_leading_digits_and_cut_at_24():
    assert rfc952_label("123-web") == "web"
    # Cut at 24 on a dash: the dash goes and the label is refilled from what follows (Mesos-DNS's trimCut).
    assert rfc952_label("a-very-long-application-name-indeed") == "a-very-long-applicationn"


def test_framework_names_keep_their_dots():
    assert domain_fragment("marathon.prod") == "marathon.prod"
    assert domain_fragment("Marathon..Prod_1") == "marathon.prod-1"


def test_canonical_name_parts_match_mesos_dns():
    # Mesos-DNS's own /v1/enumerate example: task id nginx.48dccce7-… on agent …-S1 is nginx-jhy6r-s1.
    assert task_id_hash("nginx.48dccce7-90bc-11e6-ae70-70b3d5800001") == "jhy6r"
    assert agent_id_tail("20160811-163036-16777343-5050-1-S1") == "s1"


def test_port_ranges_expand_one_by_one():
    assert expand_ports("[31000-31002, 31005-31005]") == [31000, 31001, 31002, 31005]
    assert expand_ports("[]") == [] and expand_ports(None) == []
    assert len(expand_ports("[1-65535]")) == 1024  # bounded


# --- records from the captured state ---------------------------------------------------------------------


def test_records_of_the_captured_state():
    records = generate_records(captured_state(), NamingSettings(ns_addresses=("10.0.0.53",)))
    agent_name = "web-3knpn-s0.mesos-executeinstance.slave.mesos."
    assert records.a == {
        "slave.mesos.": ["10.0.0.2"],
        "ns1.mesos.": ["10.0.0.53"],
        "leader.mesos.": ["10.0.0.1"],
        "master.mesos.": ["10.0.0.1"],
        "master0.mesos.": ["10.0.0.1"],
        # netinfo first in IPSources: the container's address for the task's own names ...
        "web.mesos-executeinstance.mesos.": ["172.17.0.5"],
        "web-3knpn-s0.mesos-executeinstance.mesos.": ["172.17.0.5"],
        # ... and the agent's for the .slave names, which the SRV records point at.
        "web.mesos-executeinstance.slave.mesos.": ["10.0.0.2"],
        agent_name: ["10.0.0.2"],
    }
    target = [ServiceTarget(agent_name, 31005)]
    leader_port = int(captured_state()["leader"].rsplit(":", 1)[1])
    assert records.srv == {
        "_slave._tcp.mesos.": [ServiceTarget("slave.mesos.", int(captured_state()["slaves"][0]["port"]))],
        "_leader._tcp.mesos.": [ServiceTarget("leader.mesos.", leader_port)],
        "_leader._udp.mesos.": [ServiceTarget("leader.mesos.", leader_port)],
        "_web._tcp.mesos-executeinstance.slave.mesos.": target,
        "_web._tcp.mesos-executeinstance.mesos.": target,
        "_web._udp.mesos-executeinstance.slave.mesos.": target,
        "_web._udp.mesos-executeinstance.mesos.": target,
    }
    assert records.aaaa == {}
    [framework] = records.frameworks
    assert framework["name"] == "mesos-execute instance"
    assert [task["id"] for task in framework["tasks"]] == ["web"]
    assert {"name": "_web._tcp.mesos-executeinstance.mesos.", "host": f"{agent_name}:31005", "rtype": "SRV"} in (
        framework["tasks"][0]["records"]
    )


def test_host_ip_source_gives_the_agents_address():
    records = generate_records(captured_state(), NamingSettings(ip_sources=("host",)))
    assert records.a["web.mesos-executeinstance.mesos."] == ["10.0.0.2"]


def test_marathon_names():
    records = generate_records(marathon_state(), NamingSettings())
    assert records.a["nginx.marathon.mesos."] == ["172.17.0.5"]
    assert records.a["nginx-jhy6r-s0.marathon.slave.mesos."] == ["10.0.0.2"]
    target = "nginx-jhy6r-s0.marathon.slave.mesos."
    assert records.srv["_nginx._tcp.marathon.mesos."] == [ServiceTarget(target, 31005), ServiceTarget(target, 31006)]


def test_only_running_tasks_on_known_agents_have_names():
    for change in ({"state": "TASK_FINISHED"}, {"state": "TASK_KILLING"}, {"slave_id": "gone-S9"}):
        state = captured_state()
        state["frameworks"][0]["tasks"][0].update(change)
        records = generate_records(state, NamingSettings())
        assert not any("mesos-executeinstance" in name for name in [*records.a, *records.srv]), change
        assert records.frameworks[0]["tasks"] == []


def test_discovery_info_ports_and_names():
    state = marathon_state()
    state["frameworks"][0]["tasks"][0]["discovery"] = {
        "visibility": "FRAMEWORK",
        "name": "Web_Front",
        "ports": {"ports": [{"number": 8080, "name": "http", "protocol": "tcp"}]},
    }
    records = generate_records(state, NamingSettings())
    canonical = "web-front-jhy6r-s0.marathon.mesos."
    assert records.a["web-front.marathon.mesos."] == ["172.17.0.5"]
    assert records.srv["_web-front._tcp.marathon.mesos."] == [ServiceTarget(canonical, 8080)]
    assert records.srv["_http._web-front._tcp.marathon.mesos."] == [ServiceTarget(canonical, 8080)]
    # With DiscoveryInfo the host ports are published under .slave only, as Mesos-DNS does.
    assert records.srv["_web-front._tcp.marathon.slave.mesos."][0].port == 31005
    assert "nginx.marathon.mesos." not in records.a


def test_masters_list_numbers_masters_and_keeps_the_leader():
    masters = ("10.0.0.3:5050", "10.0.0.1:5050", "10.0.0.3:5050")
    state = captured_state()
    state["leader"] = "master@10.0.0.1:5050"
    records = generate_records(state, NamingSettings(masters=masters))
    assert records.a["master.mesos."] == ["10.0.0.1", "10.0.0.3"]
    assert (records.a["master0.mesos."], records.a["master1.mesos."]) == (["10.0.0.3"], ["10.0.0.1"])
    assert "master2.mesos." not in records.a
    state["leader"] = "master@10.0.0.9:5050"  # a leader not in the list gets the next number
    records = generate_records(state, NamingSettings(masters=masters[:1]))
    assert records.a["master1.mesos."] == ["10.0.0.9"]


def test_framework_with_an_ip_pid_gets_names():
    state = captured_state()
    state["frameworks"][0]["pid"] = "scheduler-1@10.0.0.7:41000"
    records = generate_records(state, NamingSettings())
    assert records.a["mesos-executeinstance.mesos."] == ["10.0.0.7"]
    assert records.srv["_framework._tcp.mesos-executeinstance.mesos."] == [
        ServiceTarget("mesos-executeinstance.mesos.", 41000)
    ]


def test_malformed_state_parts_are_skipped():
    state = captured_state()
    state["frameworks"].append("not an object")
    state["frameworks"][0]["tasks"].append({"state": "TASK_RUNNING", "slave_id": AGENT_ID, "resources": "x"})
    state["slaves"].append({"id": "x", "pid": 42})
    records = generate_records(state, NamingSettings())
    assert records.a["web.mesos-executeinstance.mesos."] == ["172.17.0.5"]
    assert generate_records({}, NamingSettings()).a == {}


def test_other_domain_and_rfc952():
    state = marathon_state()
    state["frameworks"][0]["tasks"][0]["name"] = "9-lives-of-a-very-long-application"
    records = generate_records(state, NamingSettings(domain="cluster.internal", enforce_rfc952=True))
    assert records.a["lives-of-a-very-long-app.marathon.cluster.internal."] == ["172.17.0.5"]


# --- answers -------------------------------------------------------------------------------------------------


def ask(records: RecordSet, name: str, rdtype: str = "A", zone: Zone | None = None) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    response = answer(query, records, zone or Zone(), random.Random(1))
    return dns.message.from_wire(response.to_wire())  # what a client would read


def values(response: dns.message.Message) -> list[str]:
    return sorted(rdata.to_text() for rrset in response.answer for rdata in rrset)


def test_answers_for_names_that_exist_and_do_not():
    records = generate_records(marathon_state(), NamingSettings())
    found = ask(records, "NGINX.marathon.mesos.")  # case-insensitive
    assert values(found) == ["172.17.0.5"] and found.flags & dns.flags.AA and found.flags & dns.flags.RA
    srv = ask(records, "_nginx._tcp.marathon.mesos.", "SRV")
    assert values(srv) == [
        "0 1 31005 nginx-jhy6r-s0.marathon.slave.mesos.",
        "0 1 31006 nginx-jhy6r-s0.marathon.slave.mesos.",
    ]
    assert [(rrset.name.to_text(), values_of(rrset)) for rrset in srv.additional] == [
        ("nginx-jhy6r-s0.marathon.slave.mesos.", ["10.0.0.2"])
    ]
    missing = ask(records, "nothing.marathon.mesos.")
    assert missing.rcode() == dns.rcode.NXDOMAIN and missing.authority[0].rdtype == dns.rdatatype.SOA
    # Mesos-DNS: no NXDOMAIN for SRV questions, and NOERROR without data for a name with other records.
    assert ask(records, "_nothing._tcp.marathon.mesos.", "SRV").rcode() == dns.rcode.NOERROR
    nodata = ask(records, "nginx.marathon.mesos.", "AAAA")
    assert nodata.rcode() == dns.rcode.NOERROR and nodata.answer == []


def values_of(rrset) -> list[str]:
    return sorted(rdata.to_text() for rdata in rrset)


def test_soa_and_ns_at_the_apex():
    zone = Zone(soa_serial=7)
    soa = ask(RecordSet(), "mesos.", "SOA", zone)
    assert values(soa) == ["ns1.mesos. root.ns1.mesos. 7 60 600 86400 60"]
    assert values(ask(RecordSet(), "mesos.", "NS", zone)) == ["ns1.mesos."]


def test_udp_answers_too_big_are_truncated_with_tc():
    records = RecordSet()
    for index in range(100):
        records.add_address("many.marathon.mesos.", f"10.1.{index // 250}.{index % 250 + 1}")
    query = dns.message.make_query("many.marathon.mesos.", "A")
    response = answer(query, records, Zone(), random.Random(1))
    small = dns.message.from_wire(wire(response, 512))
    assert small.flags & dns.flags.TC and 0 < len(small.answer[0]) < 100
    full = dns.message.from_wire(wire(answer(query, records, Zone(), random.Random(1)), 65535))
    assert not full.flags & dns.flags.TC and len(full.answer[0]) == 100


# --- config.json ---------------------------------------------------------------------------------------------


def test_config_keys_match_case_insensitively_with_mesos_dns_defaults():
    warnings: list[str] = []
    config = parse_config(
        {"zk": "zk://10.0.0.1:2181/mesos", "HttpOn": False, "httpport": 9123, "refreshSeconds": 0.5,
         "SOAMname": "NS1.Mesos", "SOARname": "root@ns1.mesos", "resolvers": ["10.0.0.53", "10.0.0.54:5353"],
         "Domain": "Cluster", "surprise": 1},
        warnings=warnings,
    )  # fmt: skip
    assert (config.http_on, config.http_port, config.refresh_seconds, config.domain) == (False, 9123, 0.5, "cluster")
    assert (config.soa_mname, config.soa_rname) == ("ns1.mesos.", "root.ns1.mesos.")
    assert (config.ttl, config.port, config.listener, config.external_on, config.ip_sources) == (
        60, 53, "0.0.0.0", True, ["netinfo", "mesos", "host"],
    )  # fmt: skip
    assert warnings == ["ignoring unknown configuration key 'surprise'"]
    assert [resolver_address(text) for text in config.resolvers] == [("10.0.0.53", 53), ("10.0.0.54", 5353)]
    public = config.public_json()
    assert public["HttpOn"] is False and public["Zk"] == "zk://10.0.0.1:2181/mesos"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "set zk"),
        ({"zk": "http://x"}, "zk:"),
        ({"masters": ["nowhere"]}, "not host:port"),
        ({"masters": ["10.0.0.1:5050"], "resolvers": ["dns.example"]}, "not an IP address"),
        ({"masters": ["10.0.0.1:5050"], "ttl": "60"}, "ttl must be a number"),
        ({"masters": ["10.0.0.1:5050"], "domain": "-bad"}, "not a valid domain"),
        ({"masters": ["10.0.0.1:5050"], "IPSources": ["rkt"]}, "unknown source"),
        ({"masters": ["10.0.0.1:5050"], "mesosAuthentication": "basic"}, "needs mesosCredentials"),
        ({"masters": ["10.0.0.1:5050"], "mesosAuthentication": "iam"}, "not supported"),
    ],
)
def test_bad_configurations_name_the_key(document, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(copy.deepcopy(document))


def test_resolvers_default_to_resolv_conf(tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# comment\nsearch example\nnameserver 10.0.0.53\nnameserver 127.0.0.53 # local\n")
    assert resolvers_from_resolv_conf(resolv) == ["10.0.0.53", "127.0.0.53"]
    assert resolvers_from_resolv_conf(tmp_path / "missing") == []
