#!/usr/bin/env bash
# Installs what is missing, builds, and starts qwenvk. Arguments go to the program; with none
# it is the desktop app.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
exec "${BUILD_DIR:-build}/qwenvk" "$@"
