import json

import pytest

from mesolite.security.credentials import (
    Credential,
    CredentialsError,
    load_credential,
    load_credentials,
    load_secret,
    parse_user_passwords,
)


def test_mesos_json_and_plain_text_credentials_files(tmp_path):
    as_json = tmp_path / "credentials.json"
    as_json.write_text(
        json.dumps({"credentials": [{"principal": "marathon", "secret": "s1"}, {"principal": "a", "secret": "s2"}]})
    )
    as_text = tmp_path / "credentials"
    as_text.write_text("marathon s1\n\na s2\n")
    assert load_credentials(str(as_json)) == {"marathon": "s1", "a": "s2"}
    assert load_credentials(f"file://{as_text}") == {"marathon": "s1", "a": "s2"}


@pytest.mark.parametrize(
    ("contents", "named"),
    [
        ('{"credentials": [{"principal": "", "secret": "x"}]}', "credentials[0].principal"),
        ('{"credentials": [{"principal": "p"}]}', "credentials[0].secret"),
        ('{"credentials": {"principal": "p"}}', "'credentials' must be a list"),
        ('{"credentials": [', "not valid JSON"),
        ("p secret extra\n", "line 1"),
        ("p s\np t\n", "more than once"),
    ],
)
def test_bad_credentials_files_name_the_problem_and_never_the_secret(tmp_path, contents, named):
    path = tmp_path / "credentials"
    path.write_text(contents)
    with pytest.raises(CredentialsError) as error:
        load_credentials(str(path))
    assert named in str(error.value)
    assert "secret extra" not in str(error.value)


def test_missing_credentials_file_names_the_path(tmp_path):
    with pytest.raises(CredentialsError, match="missing"):
        load_credentials(str(tmp_path / "missing"))


def test_one_credential_as_json_or_a_line(tmp_path):
    as_json = tmp_path / "agent.json"
    as_json.write_text('{"principal": "agent", "secret": "s"}')
    as_line = tmp_path / "agent"
    as_line.write_text("agent s\n")
    assert load_credential(str(as_json)) == load_credential(str(as_line)) == Credential("agent", "s")
    as_line.write_text("a s\nb t\n")
    with pytest.raises(CredentialsError, match="exactly one"):
        load_credential(str(as_line))


def test_secret_file_keeps_inner_whitespace_but_not_the_final_newline(tmp_path):
    path = tmp_path / "secret"
    path.write_text(" s p \n")
    assert load_secret(str(path)) == " s p "
    path.write_text("\n")
    with pytest.raises(CredentialsError, match="empty"):
        load_secret(str(path))


def test_marathon_http_credentials():
    assert parse_user_passwords("admin:pa:ss,ops:x") == {"admin": "pa:ss", "ops": "x"}
    with pytest.raises(CredentialsError, match="entry 2"):
        parse_user_passwords("admin:x,nopassword")


def test_a_credential_never_shows_its_secret():
    assert "hunter2" not in repr(Credential("p", "hunter2"))
