"""zk:// URL parsing: what Mesos accepts, and errors that name the problem."""

import pytest

from mesolite.zookeeper.url import ZooKeeperUrl, parse_zookeeper_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("zk://10.0.0.1:2181/mesos", ZooKeeperUrl("10.0.0.1:2181", "/mesos")),
        (
            "zk://192.168.56.12:2181,192.168.56.12:2182,192.168.56.12:2183/mesos",
            ZooKeeperUrl("192.168.56.12:2181,192.168.56.12:2182,192.168.56.12:2183", "/mesos"),
        ),
        ("zk://zk1/mesos/", ZooKeeperUrl("zk1:2181", "/mesos")),
        ("zk://zk1:2181", ZooKeeperUrl("zk1:2181", "/")),
        ("zk://zk1:2181/a/b", ZooKeeperUrl("zk1:2181", "/a/b")),
        ("  zk://zk1:2181/mesos\n", ZooKeeperUrl("zk1:2181", "/mesos")),
        ("zk://jo:s3cret@zk1:2181,zk2:2181/mesos", ZooKeeperUrl("zk1:2181,zk2:2181", "/mesos", ("jo", "s3cret"))),
    ],
)
def test_valid_urls(url, expected):
    assert parse_zookeeper_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://zk1:2181/mesos", "must start with zk://"),
        ("zk1:2181/mesos", "must start with zk://"),
        ("zk://zk1:abc/mesos", "port 'abc' of host 'zk1:abc'"),
        ("zk://zk1:70000/mesos", "port '70000'"),
        ("zk://zk1:2181,,zk2:2181/mesos", "empty host"),
        ("zk://:2181/mesos", "no name before the port"),
        ("zk://jo@zk1:2181/mesos", "user:password@"),
        ("zk://zk1:2181/a//b", "empty component"),
    ],
)
def test_invalid_urls_name_the_problem(url, message):
    with pytest.raises(ValueError, match=message):
        parse_zookeeper_url(url)


def test_password_never_appears_in_errors_or_str():
    with pytest.raises(ValueError) as error:
        parse_zookeeper_url("zk://jo:s3cret@zk1:x/mesos")
    assert "s3cret" not in str(error.value)
    assert "s3cret" not in str(parse_zookeeper_url("zk://jo:s3cret@zk1:2181/mesos"))
    assert parse_zookeeper_url("zk://jo:s3cret@zk1:2181/mesos").digest == "jo:s3cret"


def test_file_indirection(tmp_path):
    zk_file = tmp_path / "zk"
    zk_file.write_text("zk://192.168.56.12:2181,192.168.56.12:2182/mesos\n")
    parsed = parse_zookeeper_url(f"file://{zk_file}")
    assert parsed == ZooKeeperUrl("192.168.56.12:2181,192.168.56.12:2182", "/mesos")


@pytest.mark.parametrize(
    ("contents", "message"),
    [(None, "cannot read"), ("", "is empty"), ("file:///etc/mesos/zk", "only one level"), ("zk1:2181", "zk://")],
)
def test_file_indirection_errors(tmp_path, contents, message):
    zk_file = tmp_path / "zk"
    if contents is not None:
        zk_file.write_text(contents)
    with pytest.raises(ValueError, match=message):
        parse_zookeeper_url(f"file://{zk_file}")
