"""Path ids of apps and groups (`/prod/db/mysql`), with Marathon's segment rules and relative forms."""

from __future__ import annotations

import re

# One segment: lowercase letters, digits and hyphens, dot-separated labels that neither start nor end
# with a hyphen (Marathon's rule, so that ids work as DNS names in Mesos-DNS).
SEGMENT = re.compile(r"^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$")
SEGMENT_RULE = (
    "lowercase letters, digits, hyphens and dots; each dot-separated part starts and ends with a letter or digit"
)
ROOT = "/"


class PathError(ValueError):
    """A path id that breaks the segment rules; the message says which segment and why."""


def canonical_path(raw: str, base: str = ROOT) -> str:
    """The absolute form of `raw`, resolved against the group `base` (`.` and `..` allowed as segments)."""
    if not isinstance(raw, str):
        raise PathError("must be a string")
    text = raw.strip()
    if not text:
        raise PathError("must not be empty")
    segments = [] if text.startswith("/") else [s for s in base.split("/") if s]
    for segment in text.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not segments:
                raise PathError(f"'{raw}' goes above the root group")
            segments.pop()
            continue
        if not SEGMENT.match(segment):
            raise PathError(f"'{raw}': segment '{segment}' is invalid (allowed: {SEGMENT_RULE})")
        segments.append(segment)
    return "/" + "/".join(segments)


def parent_of(path: str) -> str:
    head = path.rstrip("/").rsplit("/", 1)[0]
    return head or ROOT


def is_within(path: str, group: str) -> bool:
    """True when `path` is `group` itself or lies below it."""
    return group == ROOT or path == group or path.startswith(group.rstrip("/") + "/")


def task_id_prefix(app_id: str) -> str:
    """Marathon's task-id prefix for an app: `/prod/web` -> `prod_web` (tasks are `prod_web.<uuid>`)."""
    return app_id.strip("/").replace("/", "_")
