"""Mesos ACLs (`--acls`): which principal may do what, in Mesos's JSON format, so its documentation applies.

    {"permissive": false,
     "register_frameworks": [{"principals": {"values": ["marathon"]}, "roles": {"type": "ANY"}}],
     "run_tasks": [{"principals": {"values": ["marathon"]}, "users": {"values": ["nobody"]}}]}

Each action holds a list of rules, each with a subject (`principals`) and an object (the action's field below).
An entity is `{"values": [...]}`, `{"type": "ANY"}` or `{"type": "NONE"}`. Rules are checked in order and the
first one that matches decides, as in Mesos's local authorizer:

- a rule matches when its subject matches the principal (`values` containing it, `ANY`, or `NONE` for an anonymous
  request) and its object matches the object (`values` containing it, `ANY`, or `NONE`, which matches anything);
  a request about no object in particular (`register_agents`, `view_flags`) is matched by `ANY` and `NONE` only;
- a matching rule allows unless its subject or its object is `NONE` ("foo may run tasks as NONE" forbids foo);
- when no rule matches, `permissive` decides (true by default, as in Mesos).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

# The action names Mesos uses, each with the field that names its object.
ACTION_OBJECTS = {
    "register_frameworks": "roles",
    "run_tasks": "users",
    "teardown_frameworks": "framework_principals",
    "view_frameworks": "users",
    "view_tasks": "users",
    "view_executors": "users",
    "access_sandboxes": "users",
    "access_mesos_logs": "logs",
    "register_agents": "agents",
    "view_flags": "flags",
    "view_roles": "roles",
    "get_endpoints": "paths",
    # Maintenance (master/maintenance.py): judged for no object in particular, so only ANY/NONE objects decide.
    "get_maintenance_schedules": "machines",
    "update_maintenance_schedules": "machines",
    "start_maintenances": "machines",
    "stop_maintenances": "machines",
    "get_maintenance_statuses": "machines",
    "drain_agents": "agents",
    "reactivate_agents": "agents",
    "mark_agents_gone": "agents",
}


class AclError(ValueError):
    """An ACL document that cannot be used; the message names the field."""


@dataclass(frozen=True)
class Entity:
    """`values`, or everything (`ANY`), or nothing (`NONE`)."""

    kind: str  # "SOME", "ANY" or "NONE"
    values: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, value: object, where: str) -> Entity:
        if not isinstance(value, dict):
            raise AclError(f'{where} must be an object: {{"values": [...]}} or {{"type": "ANY"|"NONE"}}')
        if "values" in value:
            values = value["values"]
            if not isinstance(values, list) or not all(isinstance(item, str) for item in values):
                raise AclError(f"{where}.values must be a list of strings")
            return cls("SOME", frozenset(values))
        kind = value.get("type", "ANY")
        if kind not in ("ANY", "NONE"):
            raise AclError(f"{where}.type must be ANY or NONE, not {kind!r}")
        return cls(kind)

    def matches_subject(self, principal: str | None) -> bool:
        if self.kind == "ANY":
            return True
        if self.kind == "NONE":
            return principal is None
        return principal is not None and principal in self.values

    def matches_object(self, value: str | None) -> bool:
        return self.kind != "SOME" or (value is not None and value in self.values)


@dataclass(frozen=True)
class Rule:
    principals: Entity
    objects: Entity

    def decision(self, principal: str | None, value: str | None) -> bool | None:
        """True (allowed) or False (refused) if this rule matches, None if it does not."""
        if not (self.principals.matches_subject(principal) and self.objects.matches_object(value)):
            return None
        return self.principals.kind != "NONE" and self.objects.kind != "NONE"


class Authorizer:
    """Decides requests from an ACL document. `Authorizer.open()` allows everything (no `--acls`)."""

    def __init__(self, rules: dict[str, list[Rule]], permissive: bool = True) -> None:
        self.rules = rules
        self.permissive = permissive

    @classmethod
    def open(cls) -> Authorizer:
        return cls({}, permissive=True)

    @classmethod
    def parse(cls, document: object, where: str = "--acls") -> Authorizer:
        if not isinstance(document, dict):
            raise AclError(f"{where} must be a JSON object")
        permissive = document.get("permissive", True)
        if not isinstance(permissive, bool):
            raise AclError(f"{where}: 'permissive' must be true or false")
        rules: dict[str, list[Rule]] = {}
        for action, entries in document.items():
            if action == "permissive":
                continue
            object_field = ACTION_OBJECTS.get(action)
            if object_field is None:
                known = ", ".join(sorted(ACTION_OBJECTS))
                raise AclError(f"{where}: unknown action '{action}' (known: {known})")
            if not isinstance(entries, list):
                raise AclError(f"{where}.{action} must be a list of rules")
            rules[action] = [
                cls._rule(entry, object_field, f"{where}.{action}[{index}]") for index, entry in enumerate(entries)
            ]
        return cls(rules, permissive)

    @staticmethod
    def _rule(entry: object, object_field: str, where: str) -> Rule:
        if not isinstance(entry, dict):
            raise AclError(f"{where} must be an object with 'principals' and '{object_field}'")
        unknown = set(entry) - {"principals", object_field}
        if unknown:
            raise AclError(
                f"{where}: unknown field(s) {', '.join(sorted(unknown))} (expected principals, {object_field})"
            )
        if "principals" not in entry or object_field not in entry:
            raise AclError(f"{where} needs both 'principals' and '{object_field}'")
        return Rule(
            Entity.parse(entry["principals"], f"{where}.principals"),
            Entity.parse(entry[object_field], f"{where}.{object_field}"),
        )

    @classmethod
    def load(cls, value: str) -> Authorizer:
        """`--acls`: inline JSON, or a path (optionally `file://`) to a file holding it, as Mesos accepts."""
        text = value.strip()
        where = "--acls"
        if not text.startswith("{"):
            path = Path(text.removeprefix("file://"))
            where = str(path)
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise AclError(f"cannot read --acls from '{path}': {error}") from None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise AclError(f"{where} is not valid JSON: {error.msg} (line {error.lineno})") from None
        return cls.parse(document, where)

    @property
    def is_open(self) -> bool:
        return not self.rules and self.permissive

    def allows(self, action: str, principal: str | None, value: str | None = None) -> bool:
        """Whether `principal` (None: anonymous) may perform `action` on `value` (a role, a user, a principal;
        None for actions about no object in particular)."""
        for rule in self.rules.get(action, ()):
            decision = rule.decision(principal, value)
            if decision is not None:
                return decision
        return self.permissive
