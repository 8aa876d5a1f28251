#!/usr/bin/env bash
# Build `nginx:latest` from Debian's nginx package on the local Debian rootfs image (made by
# images/base/build.sh), without any registry, and save it as an archive for the docker role's
# docker_preload_images (lab nodes cannot pull either). Each step is skipped when nothing it is made
# from changed: a hash of this directory and of the rootfs image id, kept as an image label and
# next to the archive.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rootfs_image=${MESOLITE_ROOTFS_IMAGE:-mesolite/debian-rootfs:bookworm}
nginx_image=${MESOLITE_NGINX_IMAGE:-nginx:latest}
archive_dir=${MESOLITE_IMAGE_ARCHIVES:-$here/../../.cache/images}

label_of() { docker image inspect -f '{{ index .Config.Labels "org.mesolite.inputs" }}' "$1" 2>/dev/null || true; }

rootfs_id=$(docker image inspect -f '{{ .Id }}' "$rootfs_image" 2>/dev/null) || {
  echo "$rootfs_image is missing: run images/base/build.sh first (make images does both)" >&2
  exit 1
}
inputs_hash=$( (cd "$here" && find . -type f ! -name build.sh -print0 | sort -z | xargs -0 cat; echo "$rootfs_id") \
  | sha256sum | cut -c1-16)

if [ "$(label_of "$nginx_image")" = "$inputs_hash" ]; then
  echo "$nginx_image is up to date"
else
  # apt-cacher-ng on this machine (scripts/apt-cache.sh) speeds the build up when it answers; the
  # build container reaches it at the default bridge's gateway.
  proxy_arguments=()
  if timeout 1 bash -c 'exec 3<>/dev/tcp/127.0.0.1/3142' 2>/dev/null; then
    gateway=$(docker network inspect bridge -f '{{ (index .IPAM.Config 0).Gateway }}' 2>/dev/null || true)
    if [ -n "$gateway" ]; then proxy_arguments=(--build-arg "http_proxy=http://$gateway:3142"); fi
  fi
  echo "Building $nginx_image"
  docker build --quiet --label "org.mesolite.inputs=$inputs_hash" "${proxy_arguments[@]}" \
    --build-arg "ROOTFS_IMAGE=$rootfs_image" -t "$nginx_image" "$here" >/dev/null
fi

mkdir -p "$archive_dir"
archive="$archive_dir/nginx.tar"
if [ ! -s "$archive" ] || [ "$(cat "$archive.inputs" 2>/dev/null)" != "$inputs_hash" ]; then
  docker save "$nginx_image" -o "$archive.partial"
  mv "$archive.partial" "$archive"
  echo "$inputs_hash" >"$archive.inputs"
fi
