#!/usr/bin/env bash
# Make sure a Docker daemon answers. On a host booted with systemd we ask systemd; elsewhere
# (CI machines, containers) we start dockerd in the background, logging to /var/log/dockerd.log.
set -euo pipefail
log=/var/log/dockerd.log

if docker info >/dev/null 2>&1; then
  exit 0
fi
if ! command -v dockerd >/dev/null; then
  echo "dockerd is not installed: run 'make deps' first" >&2
  exit 1
fi
if [ -d /run/systemd/system ]; then
  echo "Starting docker with systemd"
  systemctl start docker
else
  echo "Starting dockerd in the background (log: $log)"
  setsid dockerd >>"$log" 2>&1 </dev/null &
fi
for _ in $(seq 1 120); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 0.5
done
echo "dockerd did not come up within 60 s; last lines of $log:" >&2
tail -n 20 "$log" >&2 || true
exit 1
