#!/usr/bin/env bash
# Build the local base image without any registry: debootstrap a Debian rootfs, `docker import`
# it, then `docker build` the systemd layer on top. Each step is skipped when its inputs have not
# changed (a hash of them is stored as an image label).
#
# Where a registry is reachable, MESOLITE_ROOTFS_IMAGE=debian:bookworm is the one change needed:
# debootstrap is skipped and the systemd layer is built on the published image.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
local_rootfs_image=mesolite/debian-rootfs:bookworm
rootfs_image=${MESOLITE_ROOTFS_IMAGE:-$local_rootfs_image}
base_image=${MESOLITE_BASE_IMAGE:-mesolite/base:bookworm}
suite=${MESOLITE_DEBIAN_SUITE:-bookworm}
mirror=${MESOLITE_DEBIAN_MIRROR:-http://deb.debian.org/debian}

label_of() { docker image inspect -f '{{ index .Config.Labels "org.mesolite.inputs" }}' "$1" 2>/dev/null || true; }

if [ "$rootfs_image" = "$local_rootfs_image" ]; then
  rootfs_hash=$(printf '%s %s minbase\n' "$suite" "$mirror" | sha256sum | cut -c1-16)
  if [ "$(label_of "$rootfs_image")" != "$rootfs_hash" ]; then
    echo "Building $rootfs_image with debootstrap ($suite from $mirror)"
    workdir=$(mktemp -d)
    trap 'rm -rf "$workdir"' EXIT
    debootstrap --variant=minbase "$suite" "$workdir/rootfs" "$mirror" >"$workdir/debootstrap.log" 2>&1 \
      || { tail -n 30 "$workdir/debootstrap.log"; exit 1; }
    tar -C "$workdir/rootfs" -c . | docker import \
      --change "LABEL org.mesolite.inputs=$rootfs_hash" --change 'CMD ["/bin/bash"]' - "$rootfs_image" >/dev/null
  else
    echo "$rootfs_image is up to date"
  fi
else
  rootfs_hash=$rootfs_image  # a published image: docker build pulls it
fi

# Every file of the build context (this directory, minus this script) is an input.
base_hash=$( (cd "$here" && find . -type f ! -name build.sh -print0 | sort -z | xargs -0 cat; echo "$rootfs_hash") \
  | sha256sum | cut -c1-16)
if [ "$(label_of "$base_image")" != "$base_hash" ]; then
  echo "Building $base_image"
  docker build --quiet --label "org.mesolite.inputs=$base_hash" \
    --build-arg "ROOTFS_IMAGE=$rootfs_image" -t "$base_image" "$here" >/dev/null
else
  echo "$base_image is up to date"
fi
