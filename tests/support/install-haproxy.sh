#!/usr/bin/env bash
# Installs Debian's HAProxy for the failover test (tests/cli/failover.rs)
# when it is missing. Called by .ci/run and, on first need, by that test.
# Idempotent: when haproxy is there it exits 0 at once.
set -euo pipefail
if command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
echo "installing haproxy (Debian package) for the failover test" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends haproxy >/dev/null
# The package starts a system service; the test runs its own.
$sudo systemctl stop haproxy >/dev/null 2>&1 || $sudo service haproxy stop >/dev/null 2>&1 || true
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]
