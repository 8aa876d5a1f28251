"""The benchmark scripts (bench/*.py) still start: each one's `--help` exits 0.

The benchmarks are not run by the test suite (they take minutes), but they import the runtime and the test
harness: a module moved or renamed breaks them without any test noticing. `--help` imports everything a script
imports, parses no options and starts nothing, so it fails exactly on such an import.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
# Every script in bench/ that runs as a program (bench/simulator.py is a module that bench/run.py imports).
SCRIPTS = sorted(path for path in BENCH.glob("*.py") if 'if __name__ == "__main__":' in path.read_text())


def test_the_bench_scripts_are_found():
    # Guards the parametrisation below: an empty SCRIPTS would pass without testing anything.
    assert {path.name for path in SCRIPTS} >= {"run.py", "reliability.py"}


@pytest.mark.parametrize("script", SCRIPTS, ids=[path.name for path in SCRIPTS])
def test_a_bench_script_answers_help(script: Path):
    # The venv's interpreter (the one running the tests), from the repository root as the bench/*.sh wrappers
    # run it; sys.path then holds bench/ (the script's directory), not the tests' pythonpath.
    result = subprocess.run(
        [sys.executable, str(script), "--help"],
        cwd=BENCH.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "usage:" in result.stdout
