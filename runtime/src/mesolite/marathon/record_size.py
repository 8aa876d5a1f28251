"""Marathon's `--zk_max_node_size`: no record larger than the limit is ever written, checked before any write.

Four PUTs of apps with 10 MB labels once ran ZooKeeper out of heap (and the cluster with it). Marathon
refuses a change whose stored form would exceed `--zk_max_node_size` (its deployment-plan validator:
the plan holds the original and the target definitions) with 422 "Object is not valid". The same here,
for every record a change would write: each app (current and version), each group, and the deployment
(which holds every affected app before and after, as `deployments.Deployment.to_record` stores it).

The check runs in the HTTP layer before the domain is called, so a refused change writes nothing.
Sizes are measured on the encoding `MarathonStorage` uses (compact, sorted JSON), with the version
stamps and assigned service ports the domain adds counted at their largest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from mesolite.marathon.app_definition import ValidationError
from mesolite.marathon.deployments import plan
from mesolite.marathon.timestamps import now_timestamp

# Marathon's default: 1024 * 1000 bytes (its documentation calls it "1 MiB").
DEFAULT_MAX_NODE_SIZE = 1_024_000
# A service port the domain assigns to a port given as 0 takes at most this many more digits ("0" -> "65535").
_PORT_DIGITS = 4


def encoded_size(record: Any) -> int:
    """Bytes of `record` as `MarathonStorage` writes it."""
    return len(json.dumps(record, separators=(",", ":"), sort_keys=True).encode())


def _as_stored(app: Mapping[str, Any], stamp: str) -> dict[str, Any]:
    """`app` with the version fields the domain adds (a version stamp always has the same length)."""
    return {**app, "version": stamp, "versionInfo": {"lastScalingAt": stamp, "lastConfigChangeAt": stamp}}


def _port_allowance(app: Mapping[str, Any]) -> int:
    container = app.get("container") or {}
    ports = len(app.get("portDefinitions") or []) + len(container.get("portMappings") or [])
    return ports * _PORT_DIGITS


def _too_large(what: str, size: int, limit: int) -> str:
    return (
        f"{what} would be stored as {size} bytes, more than the maximum ZooKeeper node size ({limit} bytes). "
        "You can adjust this value via --zk_max_node_size, but make sure this value is compatible with "
        "your ZooKeeper ensemble (jute.maxbuffer)."
    )


def check_change_fits(
    original: Mapping[str, dict | None],
    target: Mapping[str, dict | None],
    limit: int,
    where: Mapping[str, str] | None = None,
    groups: Iterable[Mapping[str, Any]] = (),
) -> None:
    """`ValidationError` (422) unless every record the change from `original` to `target` writes fits `limit`.

    `original` and `target` map app ids to definitions (None: absent/deleted), as the domain plans
    deployments; `where` gives the JSON path of each app in the request (default "/"); `groups` are the
    group records (id, dependencies) the change writes.
    """
    stamp = now_timestamp()
    where = where or {}
    violations: list[tuple[str, str]] = []
    stored_target: dict[str, dict | None] = {}
    allowance = 0
    for app_id, app in target.items():
        if app is None:
            stored_target[app_id] = None
            continue
        stored = _as_stored(app, stamp)
        stored_target[app_id] = stored
        extra = _port_allowance(app)
        allowance += extra
        size = encoded_size(stored) + extra
        if size > limit:
            violations.append((where.get(app_id, "/"), _too_large(f"App '{app_id}'", size, limit)))
    for group in groups:
        size = encoded_size({**group, "version": stamp})
        if size > limit:
            violations.append((where.get(group["id"], "/"), _too_large(f"Group '{group['id']}'", size, limit)))
    if not violations:
        deployment = plan(original, stored_target, stamp).to_record()
        size = encoded_size(deployment) + allowance
        if size > limit:
            apps = ", ".join(f"'{app_id}'" for app_id in sorted(set(original) | set(target)))
            what = f"The deployment of app(s) {apps} (their original and new definitions)"
            violations.append(("/", _too_large(what, size, limit)))
    if violations:
        raise ValidationError(violations)
