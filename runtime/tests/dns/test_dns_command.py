"""`mesolite dns` as a command: its configuration errors name the key and exit 2, before anything listens."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run_dns(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mesolite.cli", "dns", *arguments], capture_output=True, text=True, timeout=60
    )


def test_listed_among_the_commands():
    result = subprocess.run([sys.executable, "-m", "mesolite.cli", "--help"], capture_output=True, text=True)
    assert "dns" in result.stdout and "mesos-dns" in result.stdout


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{not json", "is not valid JSON"),
        (json.dumps({"resolvers": []}), "set zk"),
        (json.dumps({"zk": "zk://127.0.0.1:2181/mesos", "httpon": "yes"}), "httpon must be true or false"),
    ],
)
def test_bad_configuration_exits_2_naming_the_problem(tmp_path, config, message):
    path = tmp_path / "config.json"
    path.write_text(config)
    result = run_dns(f"--config={path}")
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr


def test_missing_named_configuration_and_unreadable_credential(tmp_path):
    result = run_dns(f"--config={tmp_path / 'missing.json'}")
    assert result.returncode == 2 and "cannot read the configuration" in result.stderr
    result = run_dns(f"--config={tmp_path / 'missing.json'}", "--masters=127.0.0.1:5050",
                     f"--mesos_credential={tmp_path / 'nothing'}")  # fmt: skip
    assert result.returncode == 2 and "cannot read" in result.stderr
