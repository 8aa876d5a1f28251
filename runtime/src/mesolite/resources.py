"""Mesos resource values: parsing, v1 JSON in and out, arithmetic, containment, and the /state form.

A `Resources` value maps `(name, role)` to a quantity. The quantity's kind follows Mesos:

- SCALAR  a float, kept at Mesos's fixed-point precision of three decimals (so 0.1 + 0.2 == 0.3);
- RANGES  a normalised tuple of inclusive `(begin, end)` pairs (sorted, merged, never empty);
- SET     a frozenset of strings.

Values are immutable: `+` and `-` return new values, so they can be shared between the allocator's
views of an agent without copying, and their derived forms (v1 JSON, the /state form, scalar totals)
are computed once and cached. Callers must not modify what those methods return.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

DEFAULT_ROLE = "*"

Ranges = tuple[tuple[int, int], ...]
Quantity = float | Ranges | frozenset[str]

# Mesos stores scalars as fixed-point with three decimal digits.
SCALAR_PRECISION = 1000


class ResourceError(ValueError):
    """A resource string or JSON object that cannot be understood; the message names the part."""


def round_scalar(value: float) -> float:
    return round(value * SCALAR_PRECISION) / SCALAR_PRECISION


# -- ranges ---------------------------------------------------------------------------------------


def normalize_ranges(pairs: Iterable[tuple[int, int]]) -> Ranges:
    """Sort and merge overlapping or adjacent inclusive ranges."""
    merged: list[list[int]] = []
    for begin, end in sorted((int(b), int(e)) for b, e in pairs):
        if begin > end:
            raise ResourceError(f"range [{begin}-{end}] has its begin after its end")
        if merged and begin <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([begin, end])
    return tuple((begin, end) for begin, end in merged)


def subtract_ranges(left: Ranges, right: Ranges) -> Ranges:
    """`left` without every number in `right` (both normalised)."""
    result: list[tuple[int, int]] = []
    index = 0
    for begin, end in left:
        current = begin
        while index < len(right) and right[index][1] < current:
            index += 1
        probe = index
        while probe < len(right) and right[probe][0] <= end:
            cut_begin, cut_end = right[probe]
            if cut_begin > current:
                result.append((current, cut_begin - 1))
            current = max(current, cut_end + 1)
            if current > end:
                break
            probe += 1
        if current <= end:
            result.append((current, end))
    return tuple(result)


def ranges_contain(outer: Ranges, inner: Ranges) -> bool:
    return not subtract_ranges(inner, outer)


def format_ranges(ranges: Ranges) -> str:
    """The Mesos text form, as /state shows it: `[31000-31999, 32001-32000]`."""
    return "[" + ", ".join(f"{begin}-{end}" for begin, end in ranges) + "]"


def parse_ranges(text: str, name: str = "ranges") -> Ranges:
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise ResourceError(f"{name}: ranges must look like [31000-32000,33000-33010], got '{text}'")
    pairs = []
    for part in filter(None, (piece.strip() for piece in body[1:-1].split(","))):
        bounds = part.split("-")
        try:
            if len(bounds) == 1:
                pairs.append((int(bounds[0]), int(bounds[0])))
            elif len(bounds) == 2:
                pairs.append((int(bounds[0]), int(bounds[1])))
            else:
                raise ValueError(part)
        except ValueError:
            raise ResourceError(f"{name}: '{part}' is not a range like 31000-32000") from None
    return normalize_ranges(pairs)


def parse_set(text: str, name: str = "set") -> frozenset[str]:
    body = text.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise ResourceError(f"{name}: a set must look like {{a,b,c}}, got '{text}'")
    return frozenset(item.strip() for item in body[1:-1].split(",") if item.strip())


def parse_scalar(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ResourceError(f"{name}: '{text}' is not a number, a range list [a-b] or a set {{a,b}}") from None
    if not math.isfinite(value):
        raise ResourceError(f"{name}: '{text}' is not a finite number")
    if value < 0:
        raise ResourceError(f"{name}: '{text}' is negative")
    return round_scalar(value)


def kind_of(quantity: Quantity) -> str:
    if isinstance(quantity, float | int):
        return "SCALAR"
    if isinstance(quantity, frozenset):
        return "SET"
    return "RANGES"


def _is_empty(quantity: Quantity) -> bool:
    if isinstance(quantity, float | int):
        return quantity <= 0
    return not quantity


# -- Resources ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    name: str
    role: str
    quantity: Quantity

    @property
    def kind(self) -> str:
        return kind_of(self.quantity)


class Resources:
    """An immutable bag of resources keyed by (name, role)."""

    __slots__ = ("_cache", "_entries")

    def __init__(self, entries: Mapping[tuple[str, str], Quantity] | None = None):
        cleaned: dict[tuple[str, str], Quantity] = {}
        for key, quantity in (entries or {}).items():
            if isinstance(quantity, int | float):
                quantity = round_scalar(float(quantity))
            if not _is_empty(quantity):
                cleaned[key] = quantity
        self._entries = cleaned
        self._cache: dict = {}

    @classmethod
    def _of(cls, entries: dict[tuple[str, str], Quantity]) -> Resources:
        """Wrap entries that are already clean (rounded, non-empty): the fast path of arithmetic."""
        result = cls.__new__(cls)
        result._entries = entries
        result._cache = {}
        return result

    def _cached(self, key, compute):
        value = self._cache.get(key)
        if value is None:
            value = self._cache[key] = compute()
        return value

    # construction

    @classmethod
    def from_protobuf_json(cls, resources: Iterable[Mapping] | None) -> Resources:
        """From a list of v1 JSON `Resource` objects (as in AgentInfo, Offer, TaskInfo)."""
        entries: dict[tuple[str, str], Quantity] = {}
        for index, resource in enumerate(resources or []):
            if not isinstance(resource, Mapping):
                raise ResourceError(f"resources[{index}] must be an object, got {type(resource).__name__}")
            name = resource.get("name")
            if not isinstance(name, str) or not name:
                raise ResourceError(f"resources[{index}].name is missing")
            role = _role_of(resource)
            kind = resource.get("type", "SCALAR")
            where = f"resources[{index}] ({name})"
            quantity = _quantity_from_json(resource, kind, where)
            key = (name, role)
            if key in entries:
                quantity = _add_quantity(entries[key], quantity, where)
            entries[key] = quantity
        return cls(entries)

    # views

    def __iter__(self) -> Iterator[Resource]:
        return iter(self._cached("items", self._items))

    def _items(self) -> tuple[Resource, ...]:
        return tuple(Resource(name, role, quantity) for (name, role), quantity in sorted(self._entries.items()))

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Resources) and self._entries == other._entries

    def __hash__(self) -> int:
        return hash(frozenset(self._entries.items()))

    def __repr__(self) -> str:
        return f"Resources({self})"

    def __str__(self) -> str:
        parts = []
        for resource in self:
            label = resource.name if resource.role == DEFAULT_ROLE else f"{resource.name}({resource.role})"
            parts.append(f"{label}:{_format_quantity(resource.quantity)}")
        return ";".join(parts)

    def names(self) -> set[str]:
        return {name for name, _role in self._entries}

    def roles(self) -> frozenset[str]:
        return self._cached("roles", lambda: frozenset(role for _name, role in self._entries))

    def scalar(self, name: str) -> float:
        """The total of a scalar resource over all roles (0.0 when absent)."""
        total = sum(q for (n, _r), q in self._entries.items() if n == name and isinstance(q, float))
        return round_scalar(total)

    def ranges(self, name: str) -> Ranges:
        """All ranges of a resource over all roles, merged."""
        pairs = [pair for (n, _r), q in self._entries.items() if n == name and isinstance(q, tuple) for pair in q]
        return normalize_ranges(pairs)

    def set_items(self, name: str) -> frozenset[str]:
        items: frozenset[str] = frozenset()
        for (n, _r), quantity in self._entries.items():
            if n == name and isinstance(quantity, frozenset):
                items |= quantity
        return items

    def scalars(self) -> dict[str, float]:
        """Every scalar resource summed over roles: {"cpus": 2.0, "mem": 1024.0, ...} (cached: do not modify)."""
        return self._cached("scalars", self._scalars)

    def _scalars(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for (name, _role), quantity in self._entries.items():
            if isinstance(quantity, float):
                totals[name] = round_scalar(totals.get(name, 0.0) + quantity)
        return totals

    def for_role(self, role: str) -> Resources:
        return Resources._of({key: q for key, q in self._entries.items() if key[1] == role})

    def allocatable_to(self, role: str) -> Resources:
        """What a framework in `role` may be offered: unreserved resources and those reserved for its role."""
        if self.roles() <= {DEFAULT_ROLE, role}:
            return self
        return Resources._of({key: q for key, q in self._entries.items() if key[1] in (DEFAULT_ROLE, role)})

    def unreserved(self) -> Resources:
        return self.for_role(DEFAULT_ROLE)

    def with_role(self, role: str) -> Resources:
        """The same quantities, all under `role`."""
        result = Resources()
        for resource in self:
            result = result + Resources({(resource.name, role): resource.quantity})
        return result

    def flatten(self) -> dict[str, float | str]:
        """The /state form: one value per name; scalars summed, ranges as text, sets as `{a,b}`.

        `cpus`, `mem`, `disk` and `gpus` are always present (0 when absent), as Mesos shows them.
        """
        return dict(self._cached("flat", self._flatten))

    def _flatten(self) -> dict[str, float | str]:
        flat: dict[str, float | str] = {"cpus": 0.0, "disk": 0.0, "gpus": 0.0, "mem": 0.0}
        for name in sorted(self.names()):
            kinds = {kind_of(q) for (n, _r), q in self._entries.items() if n == name}
            if "SCALAR" in kinds:
                flat[name] = self.scalar(name)
            elif "RANGES" in kinds:
                flat[name] = format_ranges(self.ranges(name))
            else:
                flat[name] = "{" + ",".join(sorted(self.set_items(name))) + "}"
        return flat

    def to_protobuf_json(self, allocation_role: str | None = None) -> list[dict]:
        """A list of v1 JSON `Resource` objects.

        Unreserved resources carry `role: "*"` (the pre-reservation-refinement form that Mesos 1.11
        sends to frameworks without the RESERVATION_REFINEMENT capability); reserved ones also carry
        `reservations`. `allocation_role` adds `allocation_info`, as Mesos does for offered resources.
        The list is cached: do not modify it.
        """
        return self._cached(("json", allocation_role), lambda: self._to_protobuf_json(allocation_role))

    def _to_protobuf_json(self, allocation_role: str | None) -> list[dict]:
        return [_resource_json(r.name, r.role, r.quantity, allocation_role) for r in self]

    # arithmetic

    def __add__(self, other: Resources) -> Resources:
        if not other._entries:
            return self
        if not self._entries:
            return other
        entries = dict(self._entries)
        for key, quantity in other._entries.items():
            entries[key] = _add_quantity(entries[key], quantity, key[0]) if key in entries else quantity
        return Resources._of(entries)

    def __sub__(self, other: Resources) -> Resources:
        """Subtraction that never goes below nothing (what is missing is simply not subtracted)."""
        if other is self:
            return Resources._of({})
        if not other._entries or not self._entries:
            return self
        entries = dict(self._entries)
        for key, quantity in other._entries.items():
            if key in entries:
                left = _subtract_quantity(entries[key], quantity)
                if _is_empty(left):
                    del entries[key]
                else:
                    entries[key] = left
        return Resources._of(entries)

    def contains(self, other: Resources) -> bool:
        """True when every quantity of `other` is available here under the same name and role."""
        for key, wanted in other._entries.items():
            have = self._entries.get(key)
            if have is None or not _quantity_contains(have, wanted):
                return False
        return True

    def is_empty(self) -> bool:
        return not self._entries


@functools.lru_cache(maxsize=65536)
def _resource_json(name: str, role: str, quantity: Quantity, allocation_role: str | None) -> dict:
    """One v1 JSON `Resource` (shared between the many values that hold the same quantity: do not modify)."""
    item: dict = {"name": name, "type": kind_of(quantity), "role": role}
    if isinstance(quantity, float):
        item["scalar"] = {"value": quantity}
    elif isinstance(quantity, frozenset):
        item["set"] = {"item": sorted(quantity)}
    else:
        item["ranges"] = {"range": [{"begin": begin, "end": end} for begin, end in quantity]}
    if role != DEFAULT_ROLE:
        item["reservation"] = {}
        item["reservations"] = [{"type": "STATIC", "role": role}]
    if allocation_role is not None:
        item["allocation_info"] = {"role": allocation_role}
    return item


def _role_of(resource: Mapping) -> str:
    reservations = resource.get("reservations")
    if isinstance(reservations, list) and reservations:
        last = reservations[-1]
        if isinstance(last, Mapping) and isinstance(last.get("role"), str):
            return last["role"]
    role = resource.get("role")
    return role if isinstance(role, str) and role else DEFAULT_ROLE


def _quantity_from_json(resource: Mapping, kind: str, where: str) -> Quantity:
    if kind == "SCALAR":
        scalar = resource.get("scalar")
        value = scalar.get("value") if isinstance(scalar, Mapping) else None
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0 or not math.isfinite(value):
            raise ResourceError(f"{where}: a SCALAR needs scalar.value, a non-negative number")
        return round_scalar(float(value))
    if kind == "RANGES":
        ranges = resource.get("ranges")
        items = ranges.get("range", []) if isinstance(ranges, Mapping) else None
        if not isinstance(items, list):
            raise ResourceError(f"{where}: RANGES needs ranges.range, a list of {{begin, end}}")
        try:
            return normalize_ranges((item["begin"], item["end"]) for item in items)
        except (KeyError, TypeError, ValueError):
            raise ResourceError(f"{where}: every ranges.range item needs integer begin and end") from None
    if kind == "SET":
        items = resource.get("set", {}).get("item", []) if isinstance(resource.get("set"), Mapping) else None
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise ResourceError(f"{where}: SET needs set.item, a list of strings")
        return frozenset(items)
    raise ResourceError(f"{where}: type must be SCALAR, RANGES or SET, got {kind!r}")


def _add_quantity(left: Quantity, right: Quantity, name: str) -> Quantity:
    if kind_of(left) != kind_of(right):
        raise ResourceError(f"{name}: cannot add a {kind_of(right)} to a {kind_of(left)}")
    if isinstance(left, float):
        return round_scalar(left + right)  # type: ignore[operator]
    if isinstance(left, frozenset):
        return left | right  # type: ignore[operator]
    return normalize_ranges(left + right)  # type: ignore[operator]


def _subtract_quantity(left: Quantity, right: Quantity) -> Quantity:
    if kind_of(left) != kind_of(right):
        return left
    if isinstance(left, float):
        return max(0.0, round_scalar(left - right))  # type: ignore[operator]
    if isinstance(left, frozenset):
        return left - right  # type: ignore[operator]
    return subtract_ranges(left, right)  # type: ignore[arg-type]


def _quantity_contains(have: Quantity, wanted: Quantity) -> bool:
    if kind_of(have) != kind_of(wanted):
        return False
    if isinstance(have, float):
        return have + 1e-9 >= wanted  # type: ignore[operator]
    if isinstance(have, frozenset):
        return wanted <= have  # type: ignore[operator]
    return ranges_contain(have, wanted)  # type: ignore[arg-type]


def _format_quantity(quantity: Quantity) -> str:
    if isinstance(quantity, float):
        return f"{quantity:g}"
    if isinstance(quantity, frozenset):
        return "{" + ",".join(sorted(quantity)) + "}"
    return "[" + ",".join(f"{begin}-{end}" for begin, end in quantity) + "]"


# -- the text syntax ------------------------------------------------------------------------------

_NAME_AND_ROLE = re.compile(r"^\s*([A-Za-z0-9_.\-/]+)\s*(?:\(\s*([^()\s]*)\s*\))?\s*$")


def parse_resources(text: str, default_role: str = DEFAULT_ROLE) -> Resources:
    """Parse Mesos's `--resources` syntax: `cpus:2;mem:1024;ports:[31000-32000];disks:{a,b};cpus(web):1`.

    A JSON array of v1 `Resource` objects is accepted too, as Mesos does. Repeated names add up.
    """
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            return Resources.from_protobuf_json(json.loads(stripped))
        except json.JSONDecodeError as error:
            raise ResourceError(f"resources: invalid JSON: {error}") from None
    entries: dict[tuple[str, str], Quantity] = {}
    for part in _split_outside_brackets(stripped, ";"):
        if not part.strip():
            continue
        label, separator, value = part.partition(":")
        if not separator:
            raise ResourceError(f"resources: '{part}' is not name:value")
        match = _NAME_AND_ROLE.match(label)
        if match is None:
            raise ResourceError(f"resources: '{label}' is not a name or name(role)")
        name, role = match.group(1), match.group(2) or default_role
        value = value.strip()
        if value.startswith("["):
            quantity: Quantity = parse_ranges(value, name)
        elif value.startswith("{"):
            quantity = parse_set(value, name)
        else:
            quantity = parse_scalar(value, name)
        key = (name, role)
        entries[key] = _add_quantity(entries[key], quantity, name) if key in entries else quantity
    return Resources(entries)


def _split_outside_brackets(text: str, separator: str) -> list[str]:
    parts, depth, current = [], 0, []
    for character in text:
        if character in "[{(":
            depth += 1
        elif character in "]})":
            depth -= 1
        if character == separator and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(character)
    parts.append("".join(current))
    return parts


# -- attributes -----------------------------------------------------------------------------------


def parse_attributes(text: str) -> list[dict]:
    """Parse `--attributes` (`rack:a;zone:1;slots:[1-4];tags:{x,y}`) into v1 JSON `Attribute` objects.

    As in Mesos, a value that reads as a number is SCALAR, `[..]` is RANGES, `{..}` is SET, anything
    else TEXT.
    """
    attributes = []
    for part in _split_outside_brackets(text.strip(), ";"):
        if not part.strip():
            continue
        name, separator, value = part.partition(":")
        name, value = name.strip(), value.strip()
        if not separator or not name:
            raise ResourceError(f"attributes: '{part}' is not name:value")
        attribute: dict = {"name": name}
        if value.startswith("["):
            ranges = parse_ranges(value, name)
            attribute |= {"type": "RANGES", "ranges": {"range": [{"begin": b, "end": e} for b, e in ranges]}}
        elif value.startswith("{"):
            attribute |= {"type": "SET", "set": {"item": sorted(parse_set(value, name))}}
        else:
            try:
                number = float(value)
                if not math.isfinite(number):
                    raise ValueError(value)
                attribute |= {"type": "SCALAR", "scalar": {"value": round_scalar(number)}}
            except ValueError:
                attribute |= {"type": "TEXT", "text": {"value": value}}
        attributes.append(attribute)
    return attributes


def flatten_attributes(attributes: Iterable[Mapping]) -> dict[str, float | str]:
    """The /state form of attributes: `{"rack": "a", "zone": 1.0, "slots": "[1-4]"}`."""
    flat: dict[str, float | str] = {}
    for attribute in attributes:
        kind = attribute.get("type")
        name = attribute.get("name", "")
        if kind == "TEXT":
            flat[name] = attribute.get("text", {}).get("value", "")
        elif kind == "SCALAR":
            flat[name] = float(attribute.get("scalar", {}).get("value", 0.0))
        elif kind == "RANGES":
            ranges = normalize_ranges((r["begin"], r["end"]) for r in attribute.get("ranges", {}).get("range", []))
            flat[name] = format_ranges(ranges)
        elif kind == "SET":
            flat[name] = "{" + ",".join(attribute.get("set", {}).get("item", [])) + "}"
    return flat
