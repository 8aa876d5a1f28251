"""Authoritative answers for the Mesos domain, as Mesos-DNS gives them (its `HandleMesos`).

- A, AAAA, SRV (with the targets' A/AAAA records in the additional section), SOA, NS and ANY;
- answers shuffled, for a rudimentary balance between the tasks of one name;
- a name with no record of the asked type: NXDOMAIN, or NOERROR (no data) when the name has records of
  another type, and always NOERROR for SRV, SOA and NS questions (as Mesos-DNS does); the SOA then goes to
  the authority section;
- SOA and NS at the domain's apex are answers (Mesos-DNS puts them in the authority section for any name;
  resolvers and `dig +short` expect them as answers at the apex, and they still come in the authority
  section for every other name).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.SOA
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV
import dns.rrset

from mesolite.dns.records import RecordSet

IN = dns.rdataclass.IN


@dataclass
class Zone:
    """What the SOA and NS records say, and the TTLs."""

    domain: str = "mesos"
    ttl: int = 60
    soa_mname: str = "ns1.mesos."
    soa_rname: str = "root.ns1.mesos."
    soa_serial: int = 1
    soa_refresh: int = 60
    soa_retry: int = 600
    soa_expire: int = 86400
    soa_minttl: int = 60
    srv_weight: int = 1
    recurse_on: bool = True

    @property
    def origin(self) -> dns.name.Name:
        return dns.name.from_text(self.domain)

    def contains(self, name: dns.name.Name) -> bool:
        return name.is_subdomain(self.origin)

    def soa(self, owner: dns.name.Name) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(owner, IN, dns.rdatatype.SOA)
        rrset.update_ttl(self.ttl)
        rrset.add(
            dns.rdtypes.ANY.SOA.SOA(
                IN,
                dns.rdatatype.SOA,
                dns.name.from_text(self.soa_mname),
                dns.name.from_text(self.soa_rname),
                self.soa_serial & 0xFFFFFFFF,
                self.soa_refresh,
                self.soa_retry,
                self.soa_expire,
                self.soa_minttl,
            )
        )
        return rrset

    def ns(self, owner: dns.name.Name) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(owner, IN, dns.rdatatype.NS)
        rrset.update_ttl(self.ttl)
        rrset.add(dns.rdtypes.ANY.NS.NS(IN, dns.rdatatype.NS, dns.name.from_text(self.soa_mname)))
        return rrset


def _address_rrset(owner: dns.name.Name, addresses: list[str], kind: dns.rdatatype.RdataType, ttl: int):
    rrset = dns.rrset.RRset(owner, IN, kind)
    rrset.update_ttl(ttl)
    maker = dns.rdtypes.IN.A.A if kind == dns.rdatatype.A else dns.rdtypes.IN.AAAA.AAAA
    for address in addresses:
        rrset.add(maker(IN, kind, address))
    return rrset


def _key(name: dns.name.Name) -> str:
    # Mesos-DNS strips wildcard labels (`.*`) from the question name before the lookup.
    return name.to_text().lower().replace(".*", "")


def answer(query: dns.message.Message, records: RecordSet, zone: Zone, rng: random.Random) -> dns.message.Message:
    """The response to a question about a name in the zone (the caller checked `zone.contains`)."""
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    if zone.recurse_on:
        response.flags |= dns.flags.RA
    else:
        response.flags &= ~dns.flags.RA
    question = query.question[0]
    owner = question.name
    key = _key(owner)
    qtype = question.rdtype
    is_any = qtype == dns.rdatatype.ANY
    at_apex = owner == zone.origin
    answers: list[dns.rrset.RRset] = []
    if qtype in (dns.rdatatype.A, dns.rdatatype.ANY) and records.a.get(key):
        answers.append(
            _address_rrset(owner, rng.sample(records.a[key], len(records.a[key])), dns.rdatatype.A, zone.ttl)
        )
    if qtype in (dns.rdatatype.AAAA, dns.rdatatype.ANY) and records.aaaa.get(key):
        values = records.aaaa[key]
        answers.append(_address_rrset(owner, rng.sample(values, len(values)), dns.rdatatype.AAAA, zone.ttl))
    if qtype in (dns.rdatatype.SRV, dns.rdatatype.ANY) and records.srv.get(key):
        targets = rng.sample(records.srv[key], len(records.srv[key]))
        rrset = dns.rrset.RRset(owner, IN, dns.rdatatype.SRV)
        rrset.update_ttl(zone.ttl)
        for target in targets:
            target_name = dns.name.from_text(target.host)
            rrset.add(dns.rdtypes.IN.SRV.SRV(IN, dns.rdatatype.SRV, 0, zone.srv_weight, target.port, target_name))
            for table, kind in ((records.a, dns.rdatatype.A), (records.aaaa, dns.rdatatype.AAAA)):
                if table.get(target.host):
                    extra = _address_rrset(target_name, table[target.host][:1], kind, zone.ttl)
                    if extra not in response.additional:
                        response.additional.append(extra)
        answers.append(rrset)
    if at_apex and qtype in (dns.rdatatype.SOA, dns.rdatatype.ANY):
        answers.append(zone.soa(owner))
    if at_apex and qtype in (dns.rdatatype.NS, dns.rdatatype.ANY):
        answers.append(zone.ns(owner))
    response.answer.extend(answers)
    if answers:
        return response
    if not at_apex and qtype == dns.rdatatype.NS:
        response.authority.append(zone.ns(owner))
        return response
    if not (qtype in (dns.rdatatype.SOA, dns.rdatatype.SRV) or is_any) and not records.has_name(key) and not at_apex:
        response.set_rcode(dns.rcode.NXDOMAIN)
    response.authority.append(zone.soa(zone.origin))
    return response


def refused(query: dns.message.Message, rcode: dns.rcode.Rcode) -> dns.message.Message:
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    return response


def wire(response: dns.message.Message, max_size: int, set_truncate_bit: bool = True) -> bytes:
    """`response` in wire format within `max_size` bytes: the additional section dropped first, then answers,
    with TC set (unless `set_truncate_bit` is off, Mesos-DNS's workaround for clients that cannot retry)."""
    try:
        return response.to_wire(max_size=max_size)
    except dns.exception.TooBig:
        pass
    response.additional = []
    if set_truncate_bit:
        response.flags |= dns.flags.TC
    try:
        return response.to_wire(max_size=max_size)
    except dns.exception.TooBig:
        pass
    # Keep as many answer records as fit: drop rdatas from the end of the last rrset until it does.
    while response.answer:
        last = response.answer[-1]
        if len(last) > 1:
            last.discard(list(last)[-1])
        else:
            response.answer.pop()
        try:
            return response.to_wire(max_size=max_size)
        except dns.exception.TooBig:
            continue
    response.authority = []
    return response.to_wire(max_size=max_size)
