#!/usr/bin/env bash
# The `device` tool sends the working tree, at most 64 MiB; the fixture models in tests/data
# and the bundled model in assets are larger than that together, and no speed run needs them. `device_tree.sh off` hides them from git for a run
# (index and .git/info/exclude), `device_tree.sh on` restores both.
set -euo pipefail
cd "$(dirname "$0")/../.."
paths=(tests/data/gguf tests/data/qwen2-tiny tests/data/family assets)
case "${1:-}" in
  off)
    git rm -r -q --cached "${paths[@]}"
    for p in "${paths[@]}"; do echo "/$p/" >>.git/info/exclude; done ;;
  on)
    git reset -q -- "${paths[@]}"
    for p in "${paths[@]}"; do sed -i "\#^/$p/\$#d" .git/info/exclude; done ;;
  paths) printf '%s\n' "${paths[@]}" ;;  # what it hides (device_fixtures.sh sends the fixtures' part)
  *) echo "usage: $0 off|on|paths" >&2; exit 2 ;;
esac
