#!/usr/bin/env bash
# `make bench`: the master against 1,000 and 10,000 simulated agents; results go to docs/benchmarks.md.
# Extra arguments go to bench/run.py (e.g. --agents 1000 --tasks 2000 --no-write).
set -euo pipefail
cd "$(dirname "$0")/.."
# Every simulated agent holds a connection (two file descriptors on this machine, one per side).
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec .venv/bin/python bench/run.py "$@"
