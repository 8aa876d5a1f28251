#!/usr/bin/env bash
# `make bench-lb`: requests through `mesolite lb` and HAProxy while the app scales, rolls and loses a task and
# while the LB and HAProxy restart; results go to docs/benchmarks.md's load balancer section (~4 min).
# Extra arguments go to bench/lb_load.py (e.g. `--no-write`, `--workers 16`, `--keep` to keep the logs).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python bench/lb_load.py "$@"
