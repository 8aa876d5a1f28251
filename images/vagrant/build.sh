#!/usr/bin/env bash
# Build mesolite/vagrant:bookworm, the image the Vagrantfile's docker provider boots: the base image
# (images/base/build.sh) plus a `vagrant` user with Vagrant's insecure public key, taken from the
# installed vagrant package. Skipped when nothing it is built from changed (a hash of this directory,
# the key and the base image id is stored as an image label), and when Vagrant is not installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
base_image=${MESOLITE_BASE_IMAGE:-mesolite/base:bookworm}
vagrant_image=${MESOLITE_VAGRANT_IMAGE:-mesolite/vagrant:bookworm}

# Debian's package keeps the key inside its gem; other installs elsewhere (MESOLITE_VAGRANT_PUBLIC_KEY).
public_key=${MESOLITE_VAGRANT_PUBLIC_KEY:-$(dpkg-query -L vagrant 2>/dev/null | grep -m1 '/keys/vagrant\.pub$' || true)}
if [ -z "$public_key" ] || [ ! -s "$public_key" ]; then
  echo "Vagrant is not installed (apt-get install vagrant): skipping $vagrant_image"
  exit 0
fi

label_of() { docker image inspect -f '{{ index .Config.Labels "org.mesolite.inputs" }}' "$1" 2>/dev/null || true; }

base_id=$(docker image inspect -f '{{ .Id }}' "$base_image" 2>/dev/null) || {
  echo "$base_image is missing: run images/base/build.sh first (make images does both)" >&2
  exit 1
}
inputs_hash=$( (cd "$here" && find . -type f ! -name build.sh -print0 | sort -z | xargs -0 cat; cat "$public_key"; echo "$base_id") \
  | sha256sum | cut -c1-16)
if [ "$(label_of "$vagrant_image")" = "$inputs_hash" ]; then
  echo "$vagrant_image is up to date"
  exit 0
fi

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$here/Dockerfile" "$context/"
cp "$public_key" "$context/vagrant.pub"
echo "Building $vagrant_image"
docker build --quiet --label "org.mesolite.inputs=$inputs_hash" \
  --build-arg "BASE_IMAGE=$base_image" -t "$vagrant_image" "$context" >/dev/null
