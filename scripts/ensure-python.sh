#!/usr/bin/env bash
# Debian ships `venv` and `pip` for Python in separate packages; install them when missing.
set -euo pipefail
python=${1:-python3}
if "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip >/dev/null
else
    echo "error: $python cannot create virtual environments; install python3-venv" >&2
    exit 1
fi
