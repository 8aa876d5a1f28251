"""Agent PINGs are spread over the ping interval: each agent once per interval, on its own phase.

The streams here record what the master queues for them (no HTTP): the schedule is pure bookkeeping, and the
end-to-end liveness (PONGs, unreachable agents) is covered with real agents in test_master_api.py.
"""

from __future__ import annotations

import json

import pytest

from mesolite.ids import IdGenerator
from mesolite.master import master as master_module
from mesolite.master.master import Master, MasterSettings
from mesolite.resources import parse_resources


class RecordingStream:
    closed = False
    name = "recording"

    def __init__(self) -> None:
        self.events: list[str] = []

    def send(self, event: dict) -> None:
        self.events.append(event["type"])

    def send_encoded(self, record: bytes) -> None:
        self.events.append(json.loads(record)["type"])

    def set_close_callback(self, _callback) -> None:
        pass

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def clock(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(master_module.time, "monotonic", lambda: now[0])
    return now


def register(master: Master, hostname: str) -> RecordingStream:
    stream = RecordingStream()
    resources = parse_resources("cpus:1;mem:128").to_protobuf_json()
    body = {"type": "REGISTER", "agent_info": {"hostname": hostname, "port": 5051, "resources": resources}}
    master.admission.admit(body, stream)
    return stream


def pings(stream: RecordingStream) -> int:
    return stream.events.count("PING")


def test_each_agent_is_pinged_once_per_interval_on_its_own_phase(clock):
    master = Master({"id": "m"}, IdGenerator("m"), MasterSettings(agent_ping_timeout=15.0))
    first = register(master, "a1")
    clock[0] = 105.0
    second = register(master, "a2")

    master.liveness.send_pings(110.0)
    assert (pings(first), pings(second)) == (0, 0)
    master.liveness.send_pings(115.0)
    assert (pings(first), pings(second)) == (1, 0)
    master.liveness.send_pings(120.0)
    assert (pings(first), pings(second)) == (1, 1)
    master.liveness.send_pings(129.0)
    assert (pings(first), pings(second)) == (1, 1)
    master.liveness.send_pings(130.0)
    assert (pings(first), pings(second)) == (2, 1)


def test_disconnected_and_reregistered_agents_are_not_pinged_twice(clock):
    master = Master({"id": "m"}, IdGenerator("m"), MasterSettings(agent_ping_timeout=15.0))
    stream = register(master, "a1")
    agent = next(iter(master.agents.values()))
    clock[0] = 110.0
    replacement = RecordingStream()
    master.admission.attach_stream(agent, replacement)  # re-attached: its phase restarts at 110
    master.liveness.send_pings(115.0)
    assert (pings(stream), pings(replacement)) == (0, 0)
    master.liveness.send_pings(125.0)
    assert pings(replacement) == 1
    agent.stream = None  # disconnected: no PING, and it leaves the schedule until it registers again
    master.liveness.send_pings(140.0)
    assert pings(replacement) == 1 and not master.liveness.schedule
