#!/usr/bin/env bash
# Install the Debian packages the controller needs (idempotent: apt-get only runs when one is missing)
# and make sure the apt cache that lab and Molecule hosts use is serving.
set -euo pipefail

packages=(
  make git python3-venv python3-dev  # the controller's venv
  docker.io                          # lab hosts and Molecule instances are containers
  debootstrap                        # builds the base image without a registry
  busybox-static                     # the 2 MB test image (images/busybox)
  apt-cacher-ng                      # apt cache that lab/Molecule hosts use (see images/base)
  zookeeper                          # the runtime's integration tests run a real ZooKeeper
  vagrant                            # `make test` checks the Vagrantfile with the docker provider
  chromium                           # headless browser for the web UI tests (Playwright)
  haproxy                            # `mesolite lb`'s tests drive a real HAProxy
  bind9-dnsutils                     # dig, to check `mesolite dns` answers as an operator would
  iproute2 netcat-openbsd curl ca-certificates
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f '${db:Status-Status}' "$package" 2>/dev/null | grep -qx installed || missing+=("$package")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "Installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
  log=$(mktemp)
  # A third-party source that cannot be reached must not stop us: Debian's own mirror is what matters.
  apt-get update -q >"$log" 2>&1 || { tail -n 5 "$log"; echo "apt-get update reported errors; continuing" >&2; }
  apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1 || { tail -n 30 "$log"; exit 1; }
  rm -f "$log"
fi

"$(dirname "$0")/apt-cache.sh"
