#!/usr/bin/env bash
# A 2 MB image with a static busybox: fast to copy into lab and Molecule nodes and to start in tests.
# Built FROM scratch with Debian's busybox-static, so it needs no registry. Also saved as an archive
# (for the docker role's docker_preload_images) next to the other local image archives.
set -euo pipefail
image=${MESOLITE_BUSYBOX_IMAGE:-mesolite/busybox:latest}
archive_dir=${MESOLITE_IMAGE_ARCHIVES:-$(cd "$(dirname "$0")/../.." && pwd)/.cache/images}
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "busybox-static is not installed (make deps installs it)" >&2; exit 1; }
inputs=$(sha256sum "$busybox" | cut -c1-16)
current=$(docker image inspect -f '{{ index .Config.Labels "org.mesolite.inputs" }}' "$image" 2>/dev/null || true)
if [ "$current" != "$inputs" ]; then
  echo "Building $image"
  context=$(mktemp -d)
  trap 'rm -rf "$context"' EXIT
  cp "$busybox" "$context/busybox"
  cat >"$context/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
CMD ["/bin/sh"]
DOCKERFILE
  docker build --quiet --label "org.mesolite.inputs=$inputs" -t "$image" "$context" >/dev/null
else
  echo "$image is up to date"
fi
mkdir -p "$archive_dir"
archive="$archive_dir/busybox.tar"
if [ ! -s "$archive" ] || [ "$(cat "$archive.inputs" 2>/dev/null)" != "$inputs" ]; then
  docker save "$image" -o "$archive"
  echo "$inputs" >"$archive.inputs"
fi
