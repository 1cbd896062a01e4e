#!/usr/bin/env bash
# Installs what is missing, builds everything with warnings as errors, and runs every test. GPU
# tests run on whatever Vulkan device exists (lavapipe on a machine without a GPU) with the
# validation layer on.
#
#   scripts/test.sh              the suite (CI runs this), the OpenAI client tests included
#   scripts/test.sh --sanitize   the suite under AddressSanitizer + UndefinedBehaviorSanitizer
#                                (build-asan/), then the chat engine's threaded tests under
#                                ThreadSanitizer (build-tsan/). Slow: an hour or more on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
# The official openai npm package for tests/openai-client, as its lock file pins it (again only
# when the lock file changed since the last install).
if [ ! tests/openai-client/node_modules/.package-lock.json -nt tests/openai-client/package-lock.json ]; then
  (cd tests/openai-client && npm ci --no-audit --no-fund)
fi

if [ "${1:-}" != "--sanitize" ]; then
  WERROR=ON scripts/build.sh
  cd "${BUILD_DIR:-build}"
  exec ctest --output-on-failure -j "$(nproc)"
fi

# No leak suppressions: sanitized builds keep the Vulkan drivers loaded until exit (see
# gpu/instance.cpp), so lavapipe's one block from its own initialization is still referenced.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/scripts/sanitizers/tsan.supp"

echo "==> AddressSanitizer + UndefinedBehaviorSanitizer: the whole suite (build-asan/)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DQWENVK_WERROR=ON -DQWENVK_SANITIZE=address,undefined >/dev/null
cmake --build build-asan -j "$(nproc)"
(cd build-asan && ctest --output-on-failure -j "$(nproc)" --timeout 3000)

echo "==> ThreadSanitizer: the chat engine's threads (build-tsan/)"
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DQWENVK_WERROR=ON -DQWENVK_SANITIZE=thread >/dev/null
cmake --build build-tsan -j "$(nproc)" --target qwenvk_app_tests qwenvk_store_tests
(cd build-tsan && ctest --output-on-failure -j "$(nproc)" --timeout 3000 -R 'ChatSession|Store|LatestJobWorker')
