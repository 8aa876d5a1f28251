#!/usr/bin/env bash
# Remove the lab: its node containers, their /var/lib/docker volumes and the lab network.
set -euo pipefail
network=${MESOLITE_LAB_NETWORK:-mesolite-lab}

for container in $(docker ps -aq --filter label=org.mesolite.lab=true); do
  name=$(docker container inspect -f '{{ .Name }}' "$container")
  echo "Removing ${name#/}"
  docker rm -f "$container" >/dev/null
  docker volume rm "mesolite-lab-${name#/}-docker" >/dev/null 2>&1 || true
done
if docker network inspect "$network" >/dev/null 2>&1; then
  echo "Removing network $network"
  docker network rm "$network" >/dev/null
fi
