"""Resource strings, v1 JSON Resource objects, arithmetic and the /state form."""

import pytest

from mesolite.resources import (
    ResourceError,
    Resources,
    flatten_attributes,
    normalize_ranges,
    parse_attributes,
    parse_resources,
    subtract_ranges,
)


@pytest.mark.parametrize(
    ("text", "flat"),
    [
        ("cpus:2;mem:1024", {"cpus": 2.0, "mem": 1024.0, "disk": 0.0, "gpus": 0.0}),
        ("cpus:0.5;cpus:0.25", {"cpus": 0.75, "mem": 0.0, "disk": 0.0, "gpus": 0.0}),
        (
            "cpus:2;mem:1024;disk:2048;ports:[31000-32000]",
            {"cpus": 2.0, "mem": 1024.0, "disk": 2048.0, "gpus": 0.0, "ports": "[31000-32000]"},
        ),
        ("ports:[1-2,4-5,3-3]", {"cpus": 0.0, "mem": 0.0, "disk": 0.0, "gpus": 0.0, "ports": "[1-5]"}),
        ("disks:{b,a}", {"cpus": 0.0, "mem": 0.0, "disk": 0.0, "gpus": 0.0, "disks": "{a,b}"}),
        ("cpus(web):1;cpus:1", {"cpus": 2.0, "mem": 0.0, "disk": 0.0, "gpus": 0.0}),
        (" cpus : 1 ; ", {"cpus": 1.0, "mem": 0.0, "disk": 0.0, "gpus": 0.0}),
    ],
)
def test_parse_and_flatten(text, flat):
    assert parse_resources(text).flatten() == flat


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("cpus", "not name:value"),
        ("cpus:two", "cpus: 'two' is not a number"),
        ("cpus:-1", "negative"),
        ("ports:[5-1]", "begin after its end"),
        ("ports:[a-b]", "ports: 'a-b' is not a range"),
        ("ports:31000-32000", "is not a number"),
        ("cpus:1;ports:[1-2];ports:{a}", "cannot add a SET to a RANGES"),
    ],
)
def test_bad_resource_strings_name_the_problem(text, complaint):
    with pytest.raises(ResourceError, match=complaint.replace("[", r"\[").replace("(", r"\(")):
        parse_resources(text)


def test_roles_are_kept_apart_and_reserved_resources_carry_reservations():
    resources = parse_resources("cpus(web):1;cpus:3")
    assert resources.for_role("web").scalar("cpus") == 1.0
    assert resources.unreserved().scalar("cpus") == 3.0
    assert resources.allocatable_to("db").scalar("cpus") == 3.0
    assert resources.allocatable_to("web").scalar("cpus") == 4.0
    reserved = next(item for item in resources.to_protobuf_json() if item["role"] == "web")
    assert reserved["reservations"] == [{"type": "STATIC", "role": "web"}]


def test_v1_json_round_trip():
    resources = parse_resources("cpus:1.5;mem:256;ports:[31000-31001,31005-31005];zones:{x}")
    as_json = resources.to_protobuf_json(allocation_role="*")
    assert {
        "name": "cpus",
        "type": "SCALAR",
        "role": "*",
        "scalar": {"value": 1.5},
        "allocation_info": {"role": "*"},
    } in as_json
    ports = next(item for item in as_json if item["name"] == "ports")
    assert ports["ranges"] == {"range": [{"begin": 31000, "end": 31001}, {"begin": 31005, "end": 31005}]}
    assert Resources.from_protobuf_json(as_json) == resources


@pytest.mark.parametrize(
    ("bad", "complaint"),
    [
        ([{"type": "SCALAR", "scalar": {"value": 1}}], r"resources\[0\].name is missing"),
        ([{"name": "cpus", "type": "SCALAR"}], "needs scalar.value"),
        ([{"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}}], "non-negative"),
        ([{"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 1}]}}], "integer begin and end"),
        ([{"name": "x", "type": "TEXT"}], "type must be SCALAR, RANGES or SET"),
        (["cpus"], r"resources\[0\] must be an object"),
    ],
)
def test_bad_v1_json_resources(bad, complaint):
    with pytest.raises(ResourceError, match=complaint):
        Resources.from_protobuf_json(bad)


def test_json_array_is_accepted_as_resources_flag():
    assert parse_resources('[{"name":"cpus","type":"SCALAR","scalar":{"value":2}}]').scalar("cpus") == 2.0


def test_arithmetic_and_containment():
    total = parse_resources("cpus:4;mem:4096;ports:[31000-31009];gpus_set:{a,b}")
    used = parse_resources("cpus:1.1;mem:1000;ports:[31002-31003];gpus_set:{a}")
    left = total - used
    assert left.scalar("cpus") == 2.9
    assert left.ranges("ports") == ((31000, 31001), (31004, 31009))
    assert left.set_items("gpus_set") == frozenset({"b"})
    assert left + used == total
    assert total.contains(used)
    assert not left.contains(used)
    assert total.contains(Resources())
    assert not total.contains(parse_resources("cpus(web):1"))
    assert parse_resources("cpus:0.1") + parse_resources("cpus:0.2") == parse_resources("cpus:0.3")
    # Subtracting what is not there leaves nothing negative behind.
    assert (parse_resources("cpus:1") - parse_resources("cpus:2;mem:5")).is_empty()


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        (((1, 10),), ((3, 4),), ((1, 2), (5, 10))),
        (((1, 10),), ((1, 10),), ()),
        (((1, 10), (20, 30)), ((5, 25),), ((1, 4), (26, 30))),
        (((1, 10),), ((11, 20),), ((1, 10),)),
        (((5, 5),), ((1, 4), (6, 9)), ((5, 5),)),
    ],
)
def test_subtract_ranges(left, right, expected):
    assert subtract_ranges(normalize_ranges(left), normalize_ranges(right)) == expected


def test_string_form_round_trips():
    resources = parse_resources("cpus(web):1;mem:64;ports:[1-3]")
    assert parse_resources(str(resources)) == resources


def test_attributes_are_typed_like_mesos():
    attributes = parse_attributes("rack:a;zone:1;slots:[1-4];tags:{x,y};host:node-1.example")
    assert attributes == [
        {"name": "rack", "type": "TEXT", "text": {"value": "a"}},
        {"name": "zone", "type": "SCALAR", "scalar": {"value": 1.0}},
        {"name": "slots", "type": "RANGES", "ranges": {"range": [{"begin": 1, "end": 4}]}},
        {"name": "tags", "type": "SET", "set": {"item": ["x", "y"]}},
        {"name": "host", "type": "TEXT", "text": {"value": "node-1.example"}},
    ]
    assert flatten_attributes(attributes) == {
        "rack": "a",
        "zone": 1.0,
        "slots": "[1-4]",
        "tags": "{x,y}",
        "host": "node-1.example",
    }


def test_bad_attributes_name_the_part():
    with pytest.raises(ResourceError, match="'rack' is not name:value"):
        parse_attributes("rack")
