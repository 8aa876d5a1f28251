#!/usr/bin/env bash
# Make sure apt-cacher-ng serves on port 3142 of this machine. Lab and Molecule hosts built from
# images/base ask for it at their default gateway (the Docker bridge, i.e. this machine) and fall
# back to downloading directly when it does not answer: a speed-up, never a requirement.
# Without systemd as PID 1 (CI, containers) nothing starts the package's service for us.
set -euo pipefail
port=3142
mirror=${MESOLITE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
backends=/etc/apt-cacher-ng/backends_debian

answers() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; }

if [ ! -x /usr/sbin/apt-cacher-ng ]; then
  echo "apt-cacher-ng is not installed; lab hosts will download packages directly" >&2
  exit 0
fi

# apt-cacher-ng maps every Debian mirror onto the backends listed here, falling back to
# ftp.debian.org, which not every network resolves. Use the mirror the base image uses,
# unless the operator has chosen one.
if [ ! -s "$backends" ]; then
  echo "$mirror/" >"$backends"
  if answers; then /etc/init.d/apt-cacher-ng restart >/dev/null; fi
fi

answers && exit 0
echo "Starting apt-cacher-ng on port $port"
/etc/init.d/apt-cacher-ng start >/dev/null
for _ in $(seq 1 50); do
  answers && exit 0
  sleep 0.2
done
echo "apt-cacher-ng did not start; lab hosts will download packages directly" >&2
