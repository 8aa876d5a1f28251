"""Mesos-DNS's naming rules: task and framework names turned into DNS labels, and the short task-id hash.

The rules are Mesos-DNS's (records/labels in its source), so that a name resolves here exactly as it does there:
lower case; `-`, `.` and `_` become `-`; every other character outside `[a-z0-9]` is dropped; leading `-` trimmed
(RFC 1123; RFC 952 also trims leading digits); cut at 63 characters (24 for RFC 952) with trailing `-` trimmed,
refilled from what follows the cut so that a label keeps its length where it can.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

LabelRule = Callable[[str], str]

RFC1123_MAX_LENGTH = 63
RFC952_MAX_LENGTH = 24
# z-base-32 (Zimmermann's human-oriented alphabet), as Mesos-DNS encodes the task-id hash.
ZBASE32_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"
TASK_HASH_LENGTH = 5


def _mapped(name: str) -> str:
    characters = []
    for character in name:
        if "A" <= character <= "Z":
            characters.append(character.lower())
        elif "a" <= character <= "z" or "0" <= character <= "9":
            characters.append(character)
        elif character in "-._":
            characters.append("-")
    return "".join(characters)


def _trim_cut(label: str, max_length: int, left: str, right: str) -> str:
    trimmed = label.lstrip(left)
    size = min(len(trimmed), max_length)
    head = trimmed[:size].rstrip(right)
    if len(head) == size:
        return head
    tail = trimmed[size:].lstrip(right)
    return head + tail[: size - len(head)] if tail else head


def rfc1123_label(name: str) -> str:
    """A name as an RFC 1123 label (Mesos-DNS's default)."""
    return _trim_cut(_mapped(name), RFC1123_MAX_LENGTH, "-", "-")


def rfc952_label(name: str) -> str:
    """A name as an RFC 952 label (Mesos-DNS's `EnforceRFC952`)."""
    return _trim_cut(_mapped(name), RFC952_MAX_LENGTH, "-0123456789", "-")


def domain_fragment(name: str, rule: LabelRule = rfc1123_label) -> str:
    """A dotted name (a framework's, `marathon.prod`) as labels joined by dots; empty labels are left out."""
    return ".".join(label for label in (rule(part) for part in name.split(".")) if label)


def zbase32(data: bytes) -> str:
    """z-base-32 of `data`, five bits a character from the most significant; the last one padded with zeros."""
    bits = int.from_bytes(data, "big")
    total = len(data) * 8
    characters = []
    for offset in range(0, total, 5):
        shift = total - offset - 5
        chunk = (bits >> shift) & 31 if shift >= 0 else (bits << -shift) & 31
        characters.append(ZBASE32_ALPHABET[chunk])
    return "".join(characters)


def task_id_hash(task_id: str) -> str:
    """The 5-character hash of a task id in canonical names (`nginx-<hash>-s1.marathon.mesos`)."""
    return zbase32(hashlib.sha1(task_id.encode(), usedforsecurity=False).digest())[:TASK_HASH_LENGTH]


def agent_id_tail(agent_id: str) -> str:
    """The last dash-separated part of an agent id, lower case (`…-S1` -> `s1`)."""
    return agent_id.split("-")[-1].lower()
