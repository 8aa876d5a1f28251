#!/usr/bin/env bash
# `make bench-reliability`: faults injected into a real cluster under load; results go to docs/reliability.md
# (~5 min). Extra arguments go to bench/reliability.py (e.g. `--repeat 10`, `--fault master-sigkill --no-write`).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python bench/reliability.py "$@"
