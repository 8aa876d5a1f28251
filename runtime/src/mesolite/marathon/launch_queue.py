"""The launch queue: how many tasks each app still needs, the backoff delay after failures, and why offers
were declined ("say why it waits")."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mesolite.marathon.timestamps import format_timestamp

# Marathon's offer-matching funnel, in its order: each declined offer counts at the first stage it failed.
MARATHON_REASONS = (
    "UnfulfilledRole",
    "UnfulfilledConstraint",
    "NoCorrespondingReservationFound",
    "AgentMaintenance",
    "InsufficientCpus",
    "InsufficientMemory",
    "InsufficientDisk",
    "InsufficientGpus",
    "InsufficientPorts",
    "DeclinedScarceResources",
)
LAST_UNUSED_OFFERS = 10


def marathon_reason(label: str) -> str:
    """Marathon's name for one of our decline labels ("insufficient cpus" -> "InsufficientCpus")."""
    if label.startswith("constraint"):
        return "UnfulfilledConstraint"
    if label.startswith("role"):
        return "UnfulfilledRole"
    if "ports" in label:
        return "InsufficientPorts"
    names = {
        "cpus": "InsufficientCpus",
        "mem": "InsufficientMemory",
        "disk": "InsufficientDisk",
        "gpus": "InsufficientGpus",
    }
    return names.get(label.rsplit(" ", 1)[-1], "DeclinedScarceResources")


@dataclass
class DeclineReason:
    """One kind of mismatch, e.g. "insufficient cpus" with what was needed and the most any offer had."""

    count: int = 0
    need: float | None = None
    largest: float | None = None

    def describe(self, label: str) -> str:
        if self.need is None:
            return f"{self.count} {label}"
        return f"{self.count} {label} (need {_number(self.need)}, largest {_number(self.largest or 0)})"


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


@dataclass
class OfferStatistics:
    """What happened to the offers looked at for one queued app since it last launched a task."""

    processed: int = 0
    used: int = 0
    reasons: dict[str, DeclineReason] = field(default_factory=dict)
    last_used_at: float | None = None
    last_unused_at: float | None = None
    last_unused: deque = field(default_factory=lambda: deque(maxlen=LAST_UNUSED_OFFERS))

    def declined(
        self, label: str, need: float | None = None, available: float | None = None, offer: Mapping | None = None
    ) -> None:
        self.processed += 1
        self.last_unused_at = time.time()
        if offer is not None:
            self.last_unused.append((offer, label, self.last_unused_at))
        reason = self.reasons.setdefault(label, DeclineReason(need=need))
        reason.count += 1
        if available is not None:
            reason.need = need
            reason.largest = available if reason.largest is None else max(reason.largest, available)

    def launched(self) -> None:
        self.processed += 1
        self.used += 1
        self.last_used_at = time.time()

    @property
    def declined_count(self) -> int:
        return sum(reason.count for reason in self.reasons.values())

    def summary(self) -> str:
        """`12 offers declined: 8 insufficient cpus (need 2, largest 1.5), 4 constraint hostname:UNIQUE`."""
        total = self.declined_count
        if not total:
            return "no offers declined yet" if not self.processed else f"{self.used} offers used"
        ordered = sorted(self.reasons.items(), key=lambda item: -item[1].count)
        parts = ", ".join(reason.describe(label) for label, reason in ordered)
        return f"{total} offer{'s' if total != 1 else ''} declined: {parts}"

    def to_json(self) -> dict[str, Any]:
        """Marathon's `processedOffersSummary` shape, plus our readable `summary`."""
        return {
            "processedOffersCount": self.processed,
            "unusedOffersCount": self.declined_count,
            "lastUnusedOfferAt": format_timestamp(self.last_unused_at) if self.last_unused_at else None,
            "lastUsedOfferAt": format_timestamp(self.last_used_at) if self.last_used_at else None,
            "rejectSummaryLastOffers": self._funnel(),
            "summary": self.summary(),
        }

    def _funnel(self) -> list[dict[str, Any]]:
        declined_by_reason: Counter[str] = Counter()
        for label, reason in self.reasons.items():
            declined_by_reason[marathon_reason(label)] += reason.count
        funnel, reaching = [], self.processed
        for name in MARATHON_REASONS:
            funnel.append({"reason": name, "declined": declined_by_reason[name], "processed": reaching})
            reaching -= declined_by_reason[name]
        return funnel

    def last_unused_offers(self) -> list[dict[str, Any]]:
        """Marathon's `lastUnusedOffers` (GET /v2/queue?embed=lastUnusedOffers): the offer and why it was not used."""
        return [
            {
                "offer": {
                    "id": offer.get("id", {}).get("value"),
                    "agentId": offer.get("agent_id", {}).get("value"),
                    "hostname": offer.get("hostname"),
                    "resources": [_resource_json(r) for r in offer.get("resources") or []],
                    "attributes": offer.get("attributes") or [],
                },
                "timestamp": format_timestamp(moment),
                "reason": [marathon_reason(label)],
                "detail": label,
            }
            for offer, label, moment in self.last_unused
        ]


def _resource_json(resource: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": resource.get("name"),
        "role": resource.get("role", "*"),
        "scalar": (resource.get("scalar") or {}).get("value", 0),
        "ranges": [
            {"begin": r.get("begin"), "end": r.get("end")} for r in (resource.get("ranges") or {}).get("range", [])
        ],
        "set": (resource.get("set") or {}).get("item", []),
    }


@dataclass
class QueueEntry:
    app_id: str
    count: int = 0
    since: float = field(default_factory=time.time)
    statistics: OfferStatistics = field(default_factory=OfferStatistics)


@dataclass
class Backoff:
    """The launch delay of one app: it grows by backoffFactor with every failure, up to maxLaunchDelaySeconds."""

    delay: float = 0.0
    until: float = 0.0


class LaunchQueue:
    def __init__(self) -> None:
        self.entries: dict[str, QueueEntry] = {}
        self.backoffs: dict[str, Backoff] = {}
        self.failures: Counter[str] = Counter()

    def set_count(self, app_id: str, count: int) -> None:
        """How many more tasks `app_id` needs now (0 removes it from the queue)."""
        if count <= 0:
            self.entries.pop(app_id, None)
            return
        entry = self.entries.get(app_id)
        if entry is None:
            self.entries[app_id] = QueueEntry(app_id, count)
        else:
            entry.count = count

    def count(self, app_id: str) -> int:
        entry = self.entries.get(app_id)
        return entry.count if entry else 0

    def delay_left(self, app_id: str, now: float | None = None) -> float:
        backoff = self.backoffs.get(app_id)
        if backoff is None:
            return 0.0
        return max(0.0, backoff.until - (time.time() if now is None else now))

    def ready(self, now: float | None = None) -> list[QueueEntry]:
        """Queued apps whose backoff delay has passed, oldest first."""
        moment = time.time() if now is None else now
        return sorted(
            (e for e in self.entries.values() if e.count > 0 and self.delay_left(e.app_id, moment) <= 0),
            key=lambda e: e.since,
        )

    def has_work(self) -> bool:
        return any(entry.count > 0 for entry in self.entries.values())

    def launched(self, app_id: str) -> None:
        entry = self.entries.get(app_id)
        if entry is not None:
            entry.count -= 1
            entry.statistics = OfferStatistics()
            entry.statistics.launched()
            if entry.count <= 0:
                del self.entries[app_id]

    def note_failure(self, app_id: str, backoff_seconds: float, factor: float, maximum: float) -> float:
        """A task of the app failed: grow its delay; returns the new delay."""
        backoff = self.backoffs.setdefault(app_id, Backoff())
        backoff.delay = backoff_seconds if backoff.delay <= 0 else min(maximum, backoff.delay * factor)
        backoff.until = time.time() + backoff.delay
        self.failures[app_id] += 1
        return backoff.delay

    def reset_delay(self, app_id: str) -> None:
        self.backoffs.pop(app_id, None)

    def forget(self, app_id: str) -> None:
        self.entries.pop(app_id, None)
        self.backoffs.pop(app_id, None)
        self.failures.pop(app_id, None)

    def statistics(self, app_id: str) -> OfferStatistics | None:
        entry = self.entries.get(app_id)
        return entry.statistics if entry else None
