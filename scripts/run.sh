#!/usr/bin/env bash
# Installs what is missing, builds, and starts qwenvk. Arguments go to the program; with none
# it lists the Vulkan devices (the desktop app takes over once it exists).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
if [ $# -eq 0 ]; then set -- devices; fi
exec "${BUILD_DIR:-build}/qwenvk" "$@"
