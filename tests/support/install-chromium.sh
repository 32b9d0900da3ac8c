#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests (tests/cli/browser.rs)
# when it is missing. Called by .ci/run and, on first need, by the tests
# (chromium() in tests/cli/support.rs). Idempotent: exits 0 at once when
# chromium is there.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
echo "installing chromium (Debian package) for the browser tests" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends chromium >/dev/null
command -v chromium >/dev/null
