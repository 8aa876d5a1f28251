#!/usr/bin/env bash
# `make molecule-all`: every Molecule scenario, MOLECULE_JOBS of them at a time (default 2).
#
# Scenarios are independent by construction: each has its own container names and its own Docker network
# (molecule/*/molecule.yml), and the controller's wheelhouse build is serialised by a lock (roles/mesolite).
# The longest scenarios start first, so that the lanes end at about the same time. Each scenario's output
# goes to .molecule-logs/<scenario>.log; a failed scenario's log is printed whole at the end.
#
#   scripts/molecule-all.sh [scenario ...]      (default: every molecule/*/molecule.yml)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=${MOLECULE_JOBS:-2}
logs="$root/.molecule-logs"

# One scenario, run by the pool below: its log, its time, PASS or FAIL on one line.
if [ "${1:-}" = --one ]; then
  scenario=$2
  started=$(date +%s)
  if molecule test -s "$scenario" >"$logs/$scenario.log" 2>&1 </dev/null; then
    echo "PASS $scenario $(($(date +%s) - started)) s"
  else
    echo "FAIL $scenario $(($(date +%s) - started)) s"
  fi
  exit 0
fi

if [ $# -gt 0 ]; then
  scenarios=("$@")
else
  mapfile -t scenarios < <(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -n1 basename | sort)
fi
# The whole-cluster scenarios take several times longer than a role's: they go first.
longest_first=(secure lab chaos mesos_agent zookeeper-ensemble)
ordered=()
for scenario in "${longest_first[@]}"; do
  for candidate in "${scenarios[@]}"; do
    [ "$candidate" = "$scenario" ] && ordered+=("$scenario")
  done
done
for candidate in "${scenarios[@]}"; do
  case " ${longest_first[*]} " in *" $candidate "*) ;; *) ordered+=("$candidate") ;; esac
done

rm -rf "$logs" && mkdir -p "$logs"
echo "Running ${#ordered[@]} Molecule scenarios, $jobs at a time (logs in .molecule-logs/): ${ordered[*]}"
started=$(date +%s)
printf '%s\n' "${ordered[@]}" | xargs -P "$jobs" -I{} "$root/scripts/molecule-all.sh" --one {} | tee "$logs/summary"
echo "All scenarios ended in $(($(date +%s) - started)) s"

failed=$(awk '$1 == "FAIL" { print $2 }' "$logs/summary")
if [ -n "$failed" ]; then
  for scenario in $failed; do
    echo "=================== molecule test -s $scenario failed; its output:"
    cat "$logs/$scenario.log"
  done
  echo "Failed scenarios: $(echo "$failed" | xargs)" >&2
  exit 1
fi
