"""Group definitions (POST/PUT /v2/groups): every field of every (sub)group checked before the domain sees it.

A group body is a tree: `{"id", "apps": [...], "groups": [...], "dependencies": [...]}`. Each field of
the wrong type, each invalid or over-long id, and each id that cannot be resolved against its parent
is a 422 naming its path (`/groups(0)/apps`), as Marathon answers; the apps themselves are checked by
`normalize_app` (in the domain, and before it by the record-size check).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from mesolite.marathon.app_definition import ValidationError, normalize_app, path_limit_problem
from mesolite.marathon.paths import ROOT, PathError, canonical_path

# Fields of a group Marathon knows; others are ignored as Marathon's JSON reader does.
LIST_FIELDS = ("apps", "groups", "dependencies", "pods")


@dataclass
class GroupTree:
    """What a group body asks for: its groups (id -> stored record) and its apps (path in the body, app, group)."""

    group_id: str
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    apps: list[tuple[str, Any, str]] = field(default_factory=list)

    def normalized_apps(self) -> tuple[dict[str, dict], dict[str, str]]:
        """The apps that normalize (id -> app) and their paths in the body; invalid ones are left to the domain."""
        apps: dict[str, dict] = {}
        where: dict[str, str] = {}
        for path, raw, base in self.apps:
            try:
                app = normalize_app(raw, base)
            except ValidationError:
                continue
            apps[app["id"]] = app
            where[app["id"]] = path
        return apps, where


def _resolve(raw_id: Any, base: str, where: str, existing: Collection[str], violations: list) -> str | None:
    if not isinstance(raw_id, str):
        violations.append((where, f"must be a string, got {'null' if raw_id is None else type(raw_id).__name__}"))
        return None
    try:
        resolved = canonical_path(raw_id, base)
    except PathError as error:
        violations.append((where, str(error)))
        return None
    problem = None if resolved in existing else path_limit_problem(resolved)
    if problem:
        violations.append((where, problem))
        return None
    return resolved


def parse_group(raw: Any, group_id: str | None, parent: str = ROOT, existing: Collection[str] = ()) -> GroupTree:
    """The group tree of a body; `group_id` is the id from the URL of a PUT, `parent` the one of a POST.

    `existing` are the groups there already: ids stored before the length limits stay usable.
    `ValidationError` naming every problem otherwise.
    """
    if not isinstance(raw, Mapping):
        raise ValidationError([("/", "a group must be a JSON object")])
    violations: list[tuple[str, str]] = []
    if group_id is not None:
        root_id = group_id
    elif "id" in raw:
        root_id = _resolve(raw["id"], parent, "/id", existing, violations)
    elif parent != ROOT:
        violations.append(("/id", "is required"))
        root_id = None
    else:
        root_id = ROOT
    tree = GroupTree(root_id or ROOT)
    pending: list[tuple[Mapping, str, str]] = [(raw, tree.group_id, "")] if root_id else []
    while pending:
        group, group_path, where = pending.pop()
        lists: dict[str, list] = {}
        for name in LIST_FIELDS:
            value = group.get(name)
            if value is not None and not isinstance(value, list):
                violations.append((f"{where}/{name}", f"must be an array, got {type(value).__name__}"))
            lists[name] = value if isinstance(value, list) else []
        for index, dependency in enumerate(lists["dependencies"]):
            _resolve(dependency, group_path, f"{where}/dependencies({index})", existing, violations)
        tree.groups[group_path] = {"id": group_path, "dependencies": list(lists["dependencies"])}
        for index, app in enumerate(lists["apps"]):
            tree.apps.append((f"{where}/apps({index})", app, group_path))
        for index, sub in enumerate(lists["groups"]):
            sub_where = f"{where}/groups({index})"
            if not isinstance(sub, Mapping):
                violations.append((sub_where, "a group must be a JSON object"))
                continue
            sub_path = _resolve(sub.get("id"), group_path, f"{sub_where}/id", existing, violations)
            if sub_path is not None:
                pending.append((sub, sub_path, sub_where))
    if violations:
        raise ValidationError(violations)
    return tree
