#!/usr/bin/env bash
# Installs Debian's software Vulkan driver (Mesa lavapipe) and the Vulkan
# loader for the tests that check or run a graph on the wonnx backend
# (tests/cli/wonnx.rs, the check of every shipped graph, `doctor`) when they
# are missing. Called by .ci/run and, on first need, by those tests
# (ensure_vulkan() in tests/cli/support.rs). Idempotent: when both are
# there it only looks (a few milliseconds) and exits 0.
set -euo pipefail
# grep reads all of ldconfig's output (no -q): with pipefail, an early exit
# could kill ldconfig with SIGPIPE and fail the check on a machine that has
# the loader.
have_loader() { ldconfig -p 2>/dev/null | grep 'libvulkan\.so\.1' >/dev/null; }
have_lavapipe() { ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; }
if have_loader && have_lavapipe; then
    exit 0
fi
if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
echo "installing mesa-vulkan-drivers and libvulkan1 (Debian packages) for the wonnx tests" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null
have_loader && have_lavapipe
