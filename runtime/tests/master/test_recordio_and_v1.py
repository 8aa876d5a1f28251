"""RecordIO framing and the v1 JSON helpers."""

import base64

import pytest

from mesolite.ids import IdGenerator
from mesolite.protocol import recordio, v1


def test_encode_is_length_newline_record():
    assert recordio.encode(b'{"type":"HEARTBEAT"}') == b'20\n{"type":"HEARTBEAT"}'


def test_reader_reassembles_records_split_anywhere():
    stream = b"".join(recordio.encode(record) for record in [b"a", b"", b"x" * 300, "ü".encode()])
    for chunk_size in (1, 2, 7, len(stream)):
        reader = recordio.RecordIOReader()
        records = []
        for offset in range(0, len(stream), chunk_size):
            records += reader.feed(stream[offset : offset + chunk_size])
        assert records == [b"a", b"", b"x" * 300, "ü".encode()]
        assert not reader.pending


@pytest.mark.parametrize("garbage", [b"abc\n{}", b"1" * 40])
def test_reader_rejects_garbage(garbage):
    with pytest.raises(recordio.RecordIOError):
        recordio.RecordIOReader().feed(garbage)


def test_task_status_has_v1_field_names_and_base64_uuid():
    status = v1.task_status("t1", "TASK_RUNNING", agent_id="a1", source="SOURCE_EXECUTOR", message="hi")
    assert status["task_id"] == {"value": "t1"}
    assert status["agent_id"] == {"value": "a1"}
    assert len(base64.b64decode(status["uuid"])) == 16
    assert isinstance(status["timestamp"], float)
    assert "uuid" not in v1.task_status("t1", "TASK_LOST", with_uuid=False)
    with pytest.raises(ValueError, match="unknown task state"):
        v1.task_status("t1", "RUNNING")


def test_ids_have_mesos_shapes():
    ids = IdGenerator("m")
    assert (ids.framework_id(), ids.framework_id(), ids.agent_id(), ids.offer_id()) == (
        "m-0000",
        "m-0001",
        "m-S0",
        "m-O0",
    )
    assert v1.value_of({"framework_id": {"value": "x"}}, "framework_id") == "x"
    assert v1.value_of({"framework_id": "x"}, "framework_id") is None
