"""Placement constraints (UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER, IS) with Marathon's semantics.

A constraint names a field — `hostname` or an agent attribute — an operator and maybe a value. An
offer's agent is acceptable for a new task when every constraint holds given where the app's other
tasks already run (including tasks placed earlier in the same round of offers).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

OPERATORS = ("UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS")
HOSTNAME_FIELDS = ("hostname", "@hostname")


@dataclass(frozen=True)
class Constraint:
    field: str
    operator: str
    value: str | None = None

    def describe(self) -> str:
        """`hostname:UNIQUE`, `rack:GROUP_BY:3`: the form used in "why it waits" summaries."""
        parts = [self.field, self.operator] + ([self.value] if self.value else [])
        return ":".join(parts)

    def to_json(self) -> list[str]:
        return [self.field, self.operator] + ([self.value] if self.value is not None else [])


@dataclass(frozen=True)
class Placement:
    """Where a task runs or could run: the agent's hostname and its attributes as text."""

    hostname: str
    attributes: Mapping[str, str] = field(default_factory=dict)

    def value_of(self, name: str) -> str | None:
        if name in HOSTNAME_FIELDS:
            return self.hostname
        return self.attributes.get(name.removeprefix("@"))


def attribute_text(attribute: Mapping) -> str | None:
    """The text of a v1 JSON `Attribute` (TEXT value, number, `[a-b]` ranges, `{x,y}` set)."""
    kind = attribute.get("type", "TEXT")
    if kind == "TEXT":
        return str(attribute.get("text", {}).get("value", ""))
    if kind == "SCALAR":
        return _number_text(float(attribute.get("scalar", {}).get("value", 0)))
    if kind == "RANGES":
        ranges = attribute.get("ranges", {}).get("range", [])
        return "[" + ",".join(f"{r.get('begin')}-{r.get('end')}" for r in ranges) + "]"
    if kind == "SET":
        return "{" + ",".join(attribute.get("set", {}).get("item", [])) + "}"
    return None


def placement_of_offer(offer: Mapping) -> Placement:
    """The Placement of a v1 `Offer` (its hostname and attributes)."""
    attributes = {}
    for attribute in offer.get("attributes", []) or []:
        text = attribute_text(attribute)
        if text is not None and "name" in attribute:
            attributes[attribute["name"]] = text
    return Placement(offer.get("hostname", ""), attributes)


def _number_text(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _same_value(left: str, right: str) -> bool:
    """Equality that treats `1`, `1.0` and `1.000` as the same scalar, as Mesos attributes do."""
    if left == right:
        return True
    try:
        return float(left) == float(right)
    except ValueError:
        return False


# -- parsing and validation ------------------------------------------------------------------------


def parse_constraint(raw: object) -> tuple[Constraint | None, str | None]:
    """A Constraint from `["field","OPERATOR","value"?]` (or Marathon's object form); else the reason."""
    if isinstance(raw, Mapping):
        raw = [raw.get("fieldName", raw.get("field")), raw.get("operator")] + (
            [raw["value"]] if raw.get("value") is not None else []
        )
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not 2 <= len(raw) <= 3:
        return None, 'must be an array ["field", "OPERATOR"] or ["field", "OPERATOR", "value"]'
    if not all(isinstance(part, str) for part in raw):
        return None, "field, operator and value must be strings"
    field_name, operator = raw[0], raw[1]
    value = raw[2] if len(raw) == 3 else None
    if not field_name:
        return None, "the field name must not be empty"
    if operator not in OPERATORS:
        return None, f"operator '{operator}' is not one of {', '.join(OPERATORS)}"
    reason = _value_problem(operator, value)
    if reason:
        return None, f"{field_name}:{operator}: {reason}"
    if operator == "UNIQUE":
        # Marathon before 1.4 accepted (and ignored) a value for UNIQUE; the reference nginx.json has "".
        value = None
    return Constraint(field_name, operator, value), None


def _value_problem(operator: str, value: str | None) -> str | None:
    if operator == "UNIQUE":
        return "UNIQUE takes no value" if value else None
    if operator in ("LIKE", "UNLIKE"):
        if not value:
            return f"{operator} needs a regular expression as value"
        try:
            re.compile(value)
        except re.error as error:
            return f"'{value}' is not a valid regular expression: {error}"
        return None
    if operator == "MAX_PER":
        if value is None or not value.isdigit() or int(value) < 1:
            return "MAX_PER needs a positive integer value"
        return None
    if operator == "GROUP_BY":
        if value and not value.isdigit():
            return f"GROUP_BY value '{value}' is not a non-negative integer"
        return None
    if operator == "IS" and not value:
        return "IS needs a value"
    return None


# -- evaluation ------------------------------------------------------------------------------------


def satisfies(constraint: Constraint, candidate: Placement, placed: Iterable[Placement]) -> bool:
    """Whether a new task may go to `candidate` given the app's tasks at `placed`."""
    offered = candidate.value_of(constraint.field)
    operator, wanted = constraint.operator, constraint.value
    if offered is None:
        # An agent without the attribute only satisfies "must not look like".
        return operator == "UNLIKE"
    values = [v for v in (p.value_of(constraint.field) for p in placed) if v is not None]
    if operator == "UNIQUE":
        return not any(_same_value(offered, value) for value in values)
    if operator == "CLUSTER":
        if wanted:
            return _same_value(offered, wanted)
        return all(_same_value(offered, value) for value in values)
    if operator == "IS":
        return wanted is not None and _same_value(offered, wanted)
    if operator == "LIKE":
        return re.fullmatch(wanted or "", offered) is not None
    if operator == "UNLIKE":
        return re.fullmatch(wanted or "", offered) is None
    if operator == "MAX_PER":
        return sum(1 for value in values if _same_value(offered, value)) < int(wanted or 0)
    if operator == "GROUP_BY":
        return _group_by_allows(offered, values, int(wanted) if wanted else 0)
    return False


def _group_by_allows(offered: str, values: list[str], minimum_groups: int) -> bool:
    """Spread evenly: open new groups until there are `minimum_groups`, then fill the emptiest ones."""
    counts = Counter(values)
    if len(counts) < minimum_groups:
        return offered not in counts
    if not counts:
        return True
    return counts.get(offered, 0) <= min(counts.values())


def first_violated(
    constraints: Iterable[Constraint], candidate: Placement, placed: Sequence[Placement]
) -> Constraint | None:
    for constraint in constraints:
        if not satisfies(constraint, candidate, placed):
            return constraint
    return None
