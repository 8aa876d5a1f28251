import json

import pytest

from mesolite.security.authorization import AclError, Authorizer


def authorizer(**document) -> Authorizer:
    return Authorizer.parse(document)


def test_first_matching_rule_decides_and_permissive_decides_the_rest():
    acls = authorizer(
        permissive=False,
        run_tasks=[
            {"principals": {"values": ["ops"]}, "users": {"type": "NONE"}},
            {"principals": {"values": ["marathon", "ops"]}, "users": {"values": ["nobody"]}},
            {"principals": {"type": "ANY"}, "users": {"values": ["guest"]}},
        ],
    )
    assert acls.allows("run_tasks", "marathon", "nobody")
    assert not acls.allows("run_tasks", "marathon", "root")  # no rule matches: not permissive
    assert not acls.allows("run_tasks", "ops", "nobody")  # the first rule forbids ops everything
    assert acls.allows("run_tasks", "anyone", "guest")
    assert acls.allows("run_tasks", None, "guest")  # ANY includes anonymous requests
    assert not acls.allows("register_frameworks", "marathon", "*")  # no rules for the action: not permissive


def test_permissive_by_default_and_none_subject_means_anonymous():
    acls = authorizer(register_frameworks=[{"principals": {"type": "NONE"}, "roles": {"type": "ANY"}}])
    assert not acls.allows("register_frameworks", None, "*")
    assert acls.allows("register_frameworks", "someone", "*")
    assert Authorizer.open().is_open and not acls.is_open


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ({"run_task": []}, "unknown action 'run_task'"),
        ({"run_tasks": {}}, "run_tasks must be a list"),
        ({"run_tasks": [{"principals": {"type": "ANY"}}]}, "needs both 'principals' and 'users'"),
        ({"run_tasks": [{"principals": {"type": "ANY"}, "roles": {"type": "ANY"}}]}, "unknown field(s) roles"),
        ({"run_tasks": [{"principals": {"type": "SOME"}, "users": {"type": "ANY"}}]}, "run_tasks[0].principals.type"),
        ({"run_tasks": [{"principals": {"values": "a"}, "users": {"type": "ANY"}}]}, "principals.values"),
        ({"permissive": "no"}, "'permissive'"),
    ],
)
def test_bad_acls_name_the_field(document, named):
    with pytest.raises(AclError) as error:
        Authorizer.parse(document)
    assert named in str(error.value)


def test_acls_inline_or_from_a_file(tmp_path):
    document = {"permissive": False, "view_tasks": [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}]}
    path = tmp_path / "acls.json"
    path.write_text(json.dumps(document))
    for value in (json.dumps(document), str(path), f"file://{path}"):
        acls = Authorizer.load(value)
        assert acls.allows("view_tasks", "ops", "root") and not acls.allows("view_tasks", "dev", "root")
    path.write_text("{")
    with pytest.raises(AclError, match="not valid JSON"):
        Authorizer.load(str(path))


def test_actions_about_no_object_are_matched_by_any_only():
    acls = authorizer(
        permissive=False,
        register_agents=[
            {"principals": {"values": ["agent"]}, "agents": {"type": "ANY"}},
            {"principals": {"values": ["odd"]}, "agents": {"values": ["node1"]}},
        ],
    )
    assert acls.allows("register_agents", "agent")
    assert not acls.allows("register_agents", "odd")  # a rule for named agents says nothing about "any agent"
    assert not acls.allows("register_agents", "stranger")
