#!/usr/bin/env bash
# `make bench`: the master against 1,000 and 10,000 simulated agents; results go to docs/benchmarks.md (~5 min).
# Extra arguments go to bench/run.py (e.g. `1000:2000 --no-write`: 1,000 agents, 2,000 tasks, print only).
set -euo pipefail
cd "$(dirname "$0")/.."
# Every simulated agent holds a connection (two file descriptors on this machine, one per side).
ulimit -n "$(ulimit -Hn)"
exec .venv/bin/python bench/run.py "$@"
