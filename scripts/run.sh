#!/usr/bin/env bash
# Installs what is missing, builds the qwenvk program (Release: it is what users run and what
# `qwenvk bench` measures), and starts it. Arguments go to the program; with none it is the
# desktop app, which opens the bundled demo model (assets/wordnet-chat, found from
# build-release/) until the user chooses another. Builds only the program, not the test suite
# (scripts/test.sh builds that).
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD_DIR="${BUILD_DIR:-build-release}" BUILD_TYPE="${BUILD_TYPE:-Release}"
echo "==> Checking the packages QwenVK needs (installs any that are missing)" >&2
scripts/setup.sh
if [ ! -x "$BUILD_DIR/qwenvk" ]; then
  echo "==> Building qwenvk ($BUILD_TYPE) in $BUILD_DIR/: the first build takes about 3 minutes on" \
       "$(nproc) cores like these when nothing else runs, longer on a busy machine; later runs rebuild only what changed" >&2
else
  echo "==> Rebuilding what changed in $BUILD_DIR/" >&2
fi
scripts/build.sh qwenvk
echo "==> Starting $BUILD_DIR/qwenvk $*" >&2
exec "$BUILD_DIR/qwenvk" "$@"
