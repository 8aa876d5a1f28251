"""Questions outside the Mesos domain, forwarded to the upstream resolvers (`resolvers`, `zoneResolvers`).

Each resolver is tried in turn (UDP, then TCP when the answer came truncated), each for `timeout` seconds
(Mesos-DNS's per-exchange `timeout`); its
answer, NXDOMAIN included, goes back as it came. When none answers: SERVFAIL. When none is configured, or
`externalon` is off: REFUSED (Mesos-DNS answers REFUSED to what it will not forward).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode

from mesolite.dns.answers import refused
from mesolite.dns.config import resolver_address

log = logging.getLogger(__name__)


@dataclass
class Forwarder:
    resolvers: list[tuple[str, int]]
    zone_resolvers: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    timeout: float = 5.0

    @classmethod
    def from_config(cls, resolvers: list[str], zone_resolvers: dict[str, list[str]], timeout: float) -> Forwarder:
        return cls(
            [resolver_address(text) for text in resolvers],
            {zone: [resolver_address(text) for text in servers] for zone, servers in zone_resolvers.items()},
            timeout,
        )

    def upstreams_for(self, name: dns.name.Name) -> list[tuple[str, int]]:
        """The zone resolvers of the longest matching zone, else the general resolvers."""
        best: tuple[int, list[tuple[str, int]]] | None = None
        for zone, servers in self.zone_resolvers.items():
            origin = dns.name.from_text(zone)
            if name.is_subdomain(origin) and (best is None or len(origin) > best[0]):
                best = (len(origin), servers)
        return best[1] if best else self.resolvers

    async def forward(self, query: dns.message.Message) -> dns.message.Message:
        upstreams = self.upstreams_for(query.question[0].name)
        if not upstreams:
            return refused(query, dns.rcode.REFUSED)
        for host, port in upstreams:
            try:
                response = await dns.asyncquery.udp(
                    query, host, timeout=self.timeout, port=port, raise_on_truncation=False
                )
                if response.flags & dns.flags.TC:
                    response = await dns.asyncquery.tcp(query, host, timeout=self.timeout, port=port)
                return response
            except (dns.exception.DNSException, OSError, EOFError) as error:
                log.info("upstream resolver %s:%s did not answer %s: %s", host, port, query.question[0].name, error)
        return refused(query, dns.rcode.SERVFAIL)
