"""Group membership znodes as Mesos names them: `<label>_<10-digit sequence>` (or a bare sequence), lowest first."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Mesos's group: ZooKeeper appends a 10-digit sequence to the prefix `<label>_`; other children
# (for example `log_replicas`) are not members.
_MEMBER_NAME = re.compile(r"^(?:(?P<label>.+)_)?(?P<sequence>\d{10})$")


@dataclass(frozen=True, order=True)
class Member:
    """One member znode; ordering is by sequence, which is what decides the leader."""

    sequence: int
    name: str
    label: str | None


def parse_member(name: str) -> Member | None:
    """The member a child znode name denotes, or None when the child is not a group member."""
    match = _MEMBER_NAME.match(name)
    if match is None:
        return None
    return Member(sequence=int(match["sequence"]), name=name, label=match["label"])


def leading_member(children: list[str]) -> Member | None:
    """The member with the lowest sequence among `children` (ZooKeeper numbers them per parent), or None."""
    members = [member for member in map(parse_member, children) if member is not None]
    return min(members, default=None)
