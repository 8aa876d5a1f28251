"""Bad input stops the role before any change, with a message that names the variable.

These run ansible-playbook on the controller against an inventory of hosts that are never
contacted: the role's `validate` entry point (argument spec plus tasks/validate.yml, the same
checks `main` starts with) needs no connection.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPOSITORY = pathlib.Path(__file__).resolve().parents[3]
PLAYBOOK = """
- name: Validate the zookeeper role's variables
  hosts: zookeeper
  gather_facts: false
  tasks:
    - name: Validate
      ansible.builtin.import_role:
        name: zookeeper
        tasks_from: validate
"""


def run_validation(tmp_path, variables, zookeeper_hosts=("zk-a", "zk-b", "zk-c")):
    inventory = {
        "all": {"hosts": {"outsider": {}}, "children": {"zookeeper": {"hosts": {name: {} for name in zookeeper_hosts}}}}
    }
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    (tmp_path / "playbook.yml").write_text(PLAYBOOK)
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    environment = dict(
        os.environ,
        ANSIBLE_ROLES_PATH=str(REPOSITORY / "roles"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_CONFIG=str(REPOSITORY / "ansible.cfg"),
    )
    environment["PATH"] = f"{pathlib.Path(sys.executable).parent}:{environment['PATH']}"
    return subprocess.run(
        [
            "ansible-playbook",
            "-i",
            str(tmp_path / "inventory.json"),
            str(tmp_path / "playbook.yml"),
            "-e",
            f"@{tmp_path / 'vars.json'}",
            "-e",
            "ansible_connection=local",
        ],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPOSITORY,
        timeout=120,
        check=False,
    )


def custom(*instances):
    return {
        "zookeeper_topology": "custom",
        "zookeeper_instances": [
            dict(zip(("id", "host", "client_port", "peer_port", "election_port"), instance, strict=True))
            for instance in instances
        ],
    }


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"zookeeper_topology": "pseudo_cluster", "zookeeper_pseudo_cluster_host": "node9"},
            ["zookeeper_pseudo_cluster_host", "'node9' is not a host of the inventory"],
        ),
        (
            custom((1, "zk-a", 2181, 3181, 4181), (1, "zk-b", 2181, 3181, 4181), (2, "zk-c", 2181, 3181, 4181)),
            ["zookeeper_instances: ids must be unique and between 1 and 255", "1, 1, 2"],
        ),
        (
            custom((1, "zk-a", 2181, 3181, 4181), (256, "zk-b", 2181, 3181, 4181), (2, "zk-c", 2181, 3181, 4181)),
            ["zookeeper_instances: ids must be unique and between 1 and 255"],
        ),
        (
            custom((1, "zk-a", 2181, 3181, 4181), (2, "zk-a", 2182, 3181, 4182), (3, "zk-b", 2181, 3181, 4181)),
            ["zookeeper_instances: port 3181 used twice on host zk-a"],
        ),
        (
            custom((1, "zk-a", 2181, 3181, 4181), (2, "nowhere", 2181, 3181, 4181), (3, "zk-b", 2181, 3181, 4181)),
            ["zookeeper_instances: host nowhere is not in the inventory"],
        ),
        (
            {
                "zookeeper_topology": "pseudo_cluster",
                "zookeeper_pseudo_cluster_host": "zk-a",
                "zookeeper_client_port": 3180,
            },
            ["zookeeper_*_port: port 3181, 3182 used twice on host zk-a"],
        ),
        ({"zookeeper_pseudo_cluster_size": "three"}, ["zookeeper_pseudo_cluster_size"]),
        ({"zookeeper_topology": "star"}, ["zookeeper_topology", "star"]),
        ({"zookeeper_four_letter_words": ["ruok"]}, ["zookeeper_four_letter_words: must contain srvr"]),
        (
            {"zookeeper_install_method": "tarball", "zookeeper_tarball_url": "https://example.org/z.tar.gz"},
            ["zookeeper_tarball_url and zookeeper_tarball_checksum"],
        ),
    ],
)
def test_bad_input_fails_and_names_the_variable(tmp_path, variables, expected):
    result = run_validation(tmp_path, variables)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for text in expected:
        assert text in output, output


def test_an_even_ensemble_is_accepted_with_a_warning(tmp_path):
    result = run_validation(tmp_path, {}, zookeeper_hosts=("zk-a", "zk-b", "zk-c", "zk-d"))
    assert result.returncode == 0, result.stdout
    assert "WARNING: 4 ZooKeeper instances" in result.stdout


@pytest.mark.parametrize(
    ("variables", "zookeeper_hosts"),
    [
        ({}, ("zk-a", "zk-b", "zk-c")),
        ({"zookeeper_topology": "pseudo_cluster"}, ("zk-a",)),
        (
            custom((1, "zk-a", 2181, 3181, 4181), (2, "zk-a", 2182, 3182, 4182), (3, "zk-b", 2181, 3181, 4181)),
            ("zk-a", "zk-b"),
        ),
    ],
)
def test_good_input_passes_without_warning(tmp_path, variables, zookeeper_hosts):
    result = run_validation(tmp_path, variables, zookeeper_hosts)
    assert result.returncode == 0, result.stdout
    assert "WARNING" not in result.stdout


def test_a_host_without_instances_is_refused(tmp_path):
    result = run_validation(
        tmp_path, {"zookeeper_topology": "pseudo_cluster", "zookeeper_pseudo_cluster_host": "zk-b"}, ("zk-a", "zk-b")
    )
    assert result.returncode != 0
    assert "zk-a runs no ZooKeeper instance" in result.stdout
