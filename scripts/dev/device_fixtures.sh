#!/usr/bin/env bash
# The fixture models on the GPU machine, so that the suites that read them (conformance of every
# architecture, the engine, generation, splits) run there too. The `device` tool sends at most 64
# MiB a call and the fixture models are about 210 MB (130 MB as xz), so they travel in parts, one a
# call, while the machine stays warm between calls (docs/speed.md, "How a run is made"):
#
#   here:   scripts/dev/device_fixtures.sh pack [MIB]
#           -> .carry/fixtures/1, 2, ...: each under MIB (default 38) of .tar.xz items, and the
#              manifest; a call carries one part beside the tree's 12 MiB, the first also the test
#              binary with its libraries and the validation layer (about 12 MiB as xz)
#   there:  scripts/dev/device_fixtures.sh unpack TEST_BINARY      (each call, carrying one part)
#
# unpack adds the carried part's items to /dev/shm/qwenvk-data (kept while the machine is held)
# and makes the folder the test binary was built to read (its compiled-in QWENVK_TEST_DATA) hold
# them beside the tree's own small fixtures. It prints the items still missing; once none
# is, run the binary, e.g. with --gtest_filter="$(scripts/dev/device_fixtures.sh suites)".
set -euo pipefail
cd "$(dirname "$0")/../.."
parts=.carry/fixtures
data=/dev/shm/qwenvk-data
# The fixtures scripts/dev/device_tree.sh hides from the tool (the bundled model in assets/ is read
# by another test binary), one item per folder or file.
items() {
  scripts/dev/device_tree.sh paths | grep '^tests/data/' | xargs -I{} find {} -mindepth 1 -maxdepth 1 | sort
}

case "${1:-}" in
  pack)
    limit=$((${2:-38} << 20))
    rm -rf "$parts" && mkdir -p "$parts/staging"
    items >"$parts/staging/manifest"
    while read -r item; do
      tar cf - "$item" | xz -6 -T2 >"$parts/staging/$(echo "$item" | tr / _).tar.xz"
    done <"$parts/staging/manifest"
    # First fit, largest first: each item into the first part it fits.
    used=()
    while read -r size archive; do
      if ((size > limit)); then echo "$archive is $size bytes, over one part" >&2; exit 1; fi
      part=0
      while ((part < ${#used[@]} && used[part] + size > limit)); do part=$((part + 1)); done
      used[part]=$((${used[part]:-0} + size))
      mkdir -p "$parts/$((part + 1))" && mv "$archive" "$parts/$((part + 1))/"
    done < <(find "$parts/staging" -name '*.tar.xz' -printf '%s %p\n' | sort -nr)
    for d in "$parts"/[0-9]*; do cp "$parts/staging/manifest" "$d/"; done
    rm -rf "$parts/staging"
    du -sh "$parts"/[0-9]* ;;
  unpack)
    binary=${2:?usage: $0 unpack TEST_BINARY}
    target=$(grep -aom1 '/[[:alnum:]/._-]*/tests/data' "$binary") ||
      { echo "$binary names no tests/data folder" >&2; exit 1; }
    mkdir -p "$data"
    for archive in "$parts"/[0-9]*/*.tar.xz; do
      [[ -e "$archive" ]] || continue
      tar xJf "$archive" -C "$data" --strip-components=2
    done
    if [[ -d "$target" ]]; then
      # The binary reads this tree's tests/data (the machine's copy sits where it was built): link
      # each unpacked item into it, again each call, as the tool refreshes the tree. Item by item,
      # and a folder's files one by one: the tree there holds an empty folder in place of each hidden
      # one (session 25 found family/qwen3-tiny and the rest empty), which a link beside it misses.
      while read -r item; do
        rel=${item#tests/data/}
        src=$data/$rel
        [[ -e "$src" ]] || continue
        if [[ -d "$src" && ! -L "$target/$rel" ]]; then
          mkdir -p "$target/$rel" && cp -rsf "$src/." "$target/$rel/"
        elif [[ ! -e "$target/$rel" ]]; then
          mkdir -p "$(dirname "$target/$rel")" && ln -sfn "$src" "$target/$rel"
        fi
      done < <(cat "$parts"/[0-9]*/manifest | sort -u)
    else
      cp -rn tests/data/. "$data/"  # the small fixtures, tracked and sent with the tree
      mkdir -p "$(dirname "$target")" && ln -sfn "$data" "$target"
    fi
    # An item is there when it is, and for a folder when every file unpacked into it is.
    present() {
      [[ -e "$data/$1" && -e "$target/$1" ]] || return 1
      [[ -d "$data/$1" ]] || return 0
      (cd "$data/$1" && find . -type f) | while read -r f; do [[ -e "$target/$1/$f" ]] || exit 1; done
    }
    missing=0
    while read -r item; do
      present "${item#tests/data/}" || { echo "missing: $item"; missing=$((missing + 1)); }
    done < <(cat "$parts"/[0-9]*/manifest 2>/dev/null | sort -u)
    echo "fixtures in $data ($target): $missing items missing" ;;
  suites)
    # The suites of qwenvk_tests that read fixture models (not CliTest: it runs the qwenvk program
    # in the build folder, which the machine lacks).
    echo '*ConformanceTest.*:EngineTest.*:GenerateTest.*:SplitEngineTest.*:AttentionCapture*:ModelConfigTest.*:Gguf*:Safetensors*:Rope*' ;;
  *)
    echo "usage: $0 pack [MIB] | unpack TEST_BINARY | suites" >&2
    exit 2 ;;
esac
