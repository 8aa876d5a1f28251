#!/usr/bin/env bash
# Create or update the controller's venv: pinned tools, the runtime package (editable, with its
# test extras) and the independent clients the compatibility tests drive.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-$root/.venv}

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet -r "$root/requirements/controller.txt"
"$venv/bin/python" -m pip install --quiet -e "$root/runtime[test]"
"$root/scripts/install-pymesos.sh" "$venv"
