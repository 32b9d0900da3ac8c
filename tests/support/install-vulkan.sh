#!/usr/bin/env bash
# Installs Debian's software Vulkan driver (Mesa lavapipe) and the Vulkan
# loader for the wonnx backend tests (tests/cli/wonnx.rs) when they are
# missing. Called by .ci/run and, on first need, by the tests. Idempotent.
set -euo pipefail
have_loader() { ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; }
have_lavapipe() { ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; }
if have_loader && have_lavapipe; then
    exit 0
fi
if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
echo "installing mesa-vulkan-drivers and libvulkan1 (Debian packages) for the wonnx tests" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null
have_loader && have_lavapipe
