#!/usr/bin/env bash
# Bring up the lab: one systemd container per host of inventories/lab, on a user-defined Docker
# network, at the address the inventory gives it; then converge site.yml against them.
# Safe to run again: existing nodes are kept (started if stopped), and site.yml is idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible.cfg"
network=${MESOLITE_LAB_NETWORK:-mesolite-lab}
subnet=${MESOLITE_LAB_SUBNET:-192.168.56.0/24}
image=${MESOLITE_BASE_IMAGE:-mesolite/base:bookworm}
inventory=inventories/lab

nodes=$(python scripts/lab-nodes.py "$inventory")

if ! docker network inspect "$network" >/dev/null 2>&1; then
  echo "Creating network $network ($subnet)"
  docker network create --label org.mesolite.lab=true --subnet "$subnet" "$network" >/dev/null
fi
actual_subnet=$(docker network inspect -f '{{ range .IPAM.Config }}{{ .Subnet }}{{ end }}' "$network")
if [ "$actual_subnet" != "$subnet" ]; then
  echo "Network $network has subnet $actual_subnet, not $subnet: run 'make lab-down' first" >&2
  exit 1
fi

while read -r node address _; do
  if ! docker container inspect "$node" >/dev/null 2>&1; then
    echo "Creating $node ($address)"
    # The flags that let systemd (and, later, Docker inside the node) run in a container on a
    # machine where --privileged fails; /var/lib/docker gets a volume because overlayfs cannot
    # sit on the container's own overlayfs.
    docker run --detach --name "$node" --hostname "$node" \
      --network "$network" --ip "$address" \
      --label org.mesolite.lab=true \
      --cap-add SYS_ADMIN --cap-add NET_ADMIN \
      --security-opt apparmor=unconfined --security-opt seccomp=unconfined \
      --tmpfs /run --tmpfs /run/lock \
      --cgroupns host --volume /sys/fs/cgroup:/sys/fs/cgroup:rw \
      --volume "mesolite-lab-$node-docker:/var/lib/docker" \
      --stop-signal SIGRTMIN+3 \
      "$image" >/dev/null
  else
    if [ "$(docker container inspect -f '{{ .State.Running }}' "$node")" != true ]; then
      echo "Starting $node"
      docker start "$node" >/dev/null
    fi
    if [ "$(docker container inspect -f '{{ .Image }}' "$node")" != "$(docker image inspect -f '{{ .Id }}' "$image")" ]; then
      echo "Note: $node runs an older $image; 'make lab-down && make lab' recreates it"
    fi
  fi
done <<<"$nodes"

# systemd needs a few seconds to boot; `is-system-running --wait` fails until its bus is up.
while read -r node _; do
  state=unknown
  for _ in $(seq 1 120); do
    state=$(docker exec "$node" systemctl is-system-running 2>/dev/null || true)
    case "$state" in running | degraded) break ;; esac
    sleep 1
  done
  case "$state" in
    running) ;;
    degraded) echo "$node: systemd is degraded:"; docker exec "$node" systemctl --failed --no-legend || true ;;
    *) echo "$node: systemd did not finish booting within 120 s (state: ${state:-unknown})" >&2; exit 1 ;;
  esac
done <<<"$nodes"

ansible-playbook -i "$inventory" site.yml
# The reference runbook, end to end (zk-status, the master's agents, mesos-resolve + mesos-execute,
# the nginx app through Marathon): the lab is only "up" when it passes.
ansible-playbook -i "$inventory" playbooks/smoke.yml

echo
echo "The lab is up (network $network, $subnet); the runbook's checks passed:"
while read -r node address groups; do
  printf '  %-6s %-15s %-45s make shell NODE=%s\n' "$node" "$address" "${groups//,/ }" "$node"
done <<<"$nodes"
while read -r node address groups; do
  case ",$groups," in *,mesos_masters,*) echo "  Mesos master UI  http://$address:5050   ($node)" ;; esac
  case ",$groups," in *,marathon,*) echo "  Marathon UI      http://$address:8080   ($node)" ;; esac
  case ",$groups," in *,marathon_lb,*) echo "  HAProxy stats    http://$address:9090/haproxy?stats   ($node; apps at their service ports)" ;; esac
  case ",$groups," in *,mesos_dns,*) echo "  Mesos-DNS        dig @$address nginx.marathon.mesos; http://$address:8123/v1/config   ($node)" ;; esac
done <<<"$nodes"
