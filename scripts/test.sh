#!/usr/bin/env bash
# Installs what is missing, builds everything with warnings as errors, and runs every test. GPU
# tests run on whatever Vulkan device exists (lavapipe on a machine without a GPU) with the
# validation layer on.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
WERROR=ON scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)"
