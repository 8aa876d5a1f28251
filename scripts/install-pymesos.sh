#!/usr/bin/env bash
# Install pymesos (an unmodified Mesos scheduler client our compatibility tests drive) into the
# venv given as $1. pymesos needs http-parser, whose C extension no longer builds on Python 3.11;
# http-parser ships a pure-Python parser that pymesos falls back to, so we install only its .py
# files from the source distribution.
set -euo pipefail
venv=${1:?usage: install-pymesos.sh VENV}
python=$venv/bin/python

"$python" -m pip install --quiet --no-deps pymesos==0.3.15 six addict

if "$python" -c 'import http_parser.pyparser' 2>/dev/null; then
  exit 0
fi
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
"$python" -m pip download --quiet --no-deps --no-binary :all: --dest "$workdir" http-parser==0.9.0
tar -C "$workdir" -xzf "$workdir"/http-parser-0.9.0.tar.gz
site_packages=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$site_packages/http_parser"
cp "$workdir"/http-parser-0.9.0/http_parser/*.py "$site_packages/http_parser/"
"$python" -c 'import pymesos, http_parser.pyparser'
