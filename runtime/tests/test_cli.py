"""The `mesolite` entry point itself."""

import subprocess
import sys

from harness.zookeeper import four_letter_word
from mesolite import __version__


def run(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mesolite.cli", *arguments], capture_output=True, text=True)


def test_version_prints_package_and_api_versions():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith(f"mesolite {__version__} (Mesos API ")


def test_unknown_command_is_named_in_the_error():
    result = run("conductor")
    assert result.returncode == 2
    assert "unknown command 'conductor'" in result.stderr


def test_zookeeper_fixture_serves_four_letter_words(zookeeper):
    assert "Mode: standalone" in four_letter_word(zookeeper.port, "srvr")
