#!/usr/bin/env bash
# Configures and builds QwenVK. `scripts/build.sh [TARGET...]` builds those targets (default: all).
#   BUILD_DIR   where (default build/)
#   BUILD_TYPE  CMake build type (default RelWithDebInfo)
#   WERROR=ON   compiler warnings are errors (scripts/test.sh, and so CI, sets it)
# Uses ccache when it is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${BUILD_DIR:-build}"
options=(-G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" -DQWENVK_WERROR="${WERROR:-OFF}")
command -v ccache >/dev/null && options+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build_dir" "${options[@]}" >/dev/null
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$build_dir" -j "$(nproc)" "${targets[@]}"
