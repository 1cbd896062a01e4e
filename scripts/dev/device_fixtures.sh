#!/usr/bin/env bash
# The fixture models on the GPU machine, so that the suites that read them (conformance of every
# architecture, the engine, generation, splits) run there too. The `device` tool sends at most 64
# MiB a call and the fixture models are about 210 MB (140 MB as xz), so they travel in parts, one a
# call, while the machine stays warm between calls (docs/speed.md, "How a run is made"):
#
#   here:   scripts/dev/speed_pack.sh                    (the Release test binary and its libraries)
#           scripts/dev/device_fixtures.sh pack [MIB]
#           -> .carry/fixtures/0: the test binary, its libraries, .gl's loader packages and the
#              validation layer, one xz archive (about 12 MiB);
#              .carry/fixtures/1, 2, ...: each under MIB (default 38) of .tar.xz items, and the
#              manifest. Call 1 carries parts 0 and 1, each later call one part, beside the tree's
#              12 MiB.
#           scripts/dev/device_fixtures.sh pack0       (part 0 alone, after a new test binary: enough
#              for a kernel filter such as '*Coopmat*', which reads no fixture model)
#           scripts/dev/device_fixtures.sh pack-items ITEM...   (part 1 alone, holding only the named
#              items of `items`, e.g. tests/data/family/qwen3moe-tiny: for one architecture's suites
#              in the call that carries part 0 too)
#   there:  scripts/dev/device_fixtures.sh unpack        (each call)
#           scripts/dev/device_fixtures.sh run [SECONDS] [FILTER]  (once unpack says none is missing;
#              FILTER: a gtest filter in place of the fixture suites, e.g. a branch's kernel suites;
#              unpack first in that call too, as the tool refreshes the tree and its links)
#
# unpack puts part 0 in /tmp/qwenvk-fx, adds the carried part's items to /dev/shm/qwenvk-data
# (both kept while the machine is held) and makes the folder the test binary was built to read
# (its compiled-in QWENVK_TEST_DATA) hold them beside the tree's own small fixtures. It prints the
# items still missing. run runs the suites that read them (`suites` prints their filter) with the
# validation layer on; VK_DRIVER_FILES comes from the caller, as for every run there.
set -euo pipefail
cd "$(dirname "$0")/../.."
parts=.carry/fixtures
data=/dev/shm/qwenvk-data
fx=/tmp/qwenvk-fx  # part 0 unpacked: qwenvk_tests, lib/, gl/, layer/
suites='*ConformanceTest.*:EngineTest.*:GenerateTest.*:SplitEngineTest.*:AttentionCapture*:ModelConfigTest.*:Gguf*:Safetensors*:Rope*'
# The fixtures scripts/dev/device_tree.sh hides from the tool (the bundled model in assets/ is read
# by another test binary), one item per folder or file.
items() {
  scripts/dev/device_tree.sh paths | grep '^tests/data/' | xargs -I{} find {} -mindepth 1 -maxdepth 1 | sort
}

# One item as the archive unpack takes (tests/data/... inside, named by its path) into folder $2.
pack_item() { tar cf - "$1" | xz -6 -T2 >"$2/$(echo "$1" | tr / _).tar.xz"; }

# Part 0: what runs them (speed_pack.sh's binary and libraries, the system's validation layer).
pack_part0() {
  rm -rf "$parts/0"
  staging=$(mktemp -d)
  mkdir -p "$staging/gl" "$staging/lib" "$staging/layer" "$parts/0"
  cp .carry/speed/qwenvk_tests "$staging/" && cp .carry/speed/lib/* "$staging/lib/" && cp .gl/*.deb "$staging/gl/"
  cp /usr/lib/x86_64-linux-gnu/libVkLayer_khronos_validation.so \
    /usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json "$staging/layer/"
  tar cf - -C "$staging" . | xz -6 -T2 >"$parts/0/bundle.tar.xz"
  rm -rf "$staging"
}

case "${1:-}" in
  pack)
    limit=$((${2:-38} << 20))
    rm -rf "$parts" && mkdir -p "$parts/staging"
    items >"$parts/staging/manifest"
    while read -r item; do pack_item "$item" "$parts/staging"; done <"$parts/staging/manifest"
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
    pack_part0
    du -sh "$parts"/[0-9]* ;;
  pack-items)
    shift
    (($# > 0)) || { echo "usage: $0 pack-items ITEM..." >&2; exit 2; }
    known=$(items)
    for item in "$@"; do
      grep -qxF "$item" <<<"$known" ||
        { echo "$item is not a fixture item: '$0 items' lists them (with scripts/dev/device_tree.sh on)" >&2; exit 1; }
    done
    rm -rf "$parts"/[1-9]* && mkdir -p "$parts/1"
    printf '%s\n' "$@" >"$parts/1/manifest"
    for item in "$@"; do pack_item "$item" "$parts/1"; done
    du -sh "$parts/1" ;;
  items)  # the fixture items, one per line
    items ;;
  pack0)  # part 0 alone: enough for a kernel filter, which reads no fixture model
    pack_part0
    du -sh "$parts"/[0-9]* ;;
  unpack)
    if [[ -e "$parts/0/bundle.tar.xz" ]]; then
      rm -rf "$fx" && mkdir -p "$fx" && tar xJf "$parts/0/bundle.tar.xz" -C "$fx"
      for deb in "$fx"/gl/*.deb; do dpkg -x "$deb" /; done
      ldconfig
    fi
    binary=$fx/qwenvk_tests
    [[ -x "$binary" ]] || { echo "no $binary: carry .carry/fixtures/0 first" >&2; exit 1; }
    target=$(grep -aom1 '/[[:alnum:]/._-]*/tests/data' "$binary") ||
      { echo "$binary names no tests/data folder" >&2; exit 1; }
    # Every item of the fixtures (each part carries the whole list).
    mapfile -t manifest < <(cat "$parts"/[1-9]*/manifest 2>/dev/null | sort -u)
    mkdir -p "$data"
    for archive in "$parts"/[1-9]*/*.tar.xz; do
      [[ -e "$archive" ]] || continue
      tar xJf "$archive" -C "$data" --strip-components=2
    done
    if [[ -d "$target" ]]; then
      # The binary reads this tree's tests/data (the machine's copy sits where it was built): link
      # each unpacked item into it, again each call, as the tool refreshes the tree. Item by item,
      # and a folder's files one by one: the tree there holds an empty folder in place of each hidden
      # one (session 25 found family/qwen3-tiny and the rest empty), which a link beside it misses.
      for item in "${manifest[@]}"; do
        rel=${item#tests/data/}
        src=$data/$rel
        [[ -e "$src" ]] || continue
        if [[ -d "$src" && ! -L "$target/$rel" ]]; then
          mkdir -p "$target/$rel" && cp -rsf "$src/." "$target/$rel/"
        elif [[ ! -e "$target/$rel" ]]; then
          mkdir -p "$(dirname "$target/$rel")" && ln -sfn "$src" "$target/$rel"
        fi
      done
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
    for item in "${manifest[@]}"; do
      present "${item#tests/data/}" || { echo "missing: $item"; missing=$((missing + 1)); }
    done
    echo "fixtures in $data ($target): $missing items missing" ;;
  run)
    # Every line of the log to $OUT/fixtures.log (the tool brings $OUT back), the verdicts here.
    log=${OUT:-/tmp}/fixtures.log
    status=0
    VK_LAYER_PATH=$fx/layer LD_LIBRARY_PATH=$fx/lib:$fx/layer QWENVK_VALIDATION=1 \
      timeout "${2:-300}" "$fx/qwenvk_tests" --gtest_filter="${3:-$suites}" >"$log" 2>&1 || status=$?
    grep -E '^\[  (PASSED|FAILED) |tests? ran' "$log" | head -40 || true
    echo "exit status $status; the log in $log"
    exit "$status" ;;
  suites)
    # The suites of qwenvk_tests that read fixture models (not CliTest: it runs the qwenvk program
    # in the build folder, which the machine lacks).
    echo "$suites" ;;
  *)
    echo "usage: $0 pack [MIB] | pack0 | pack-items ITEM... | items | unpack | run [SECONDS] [FILTER] | suites" >&2
    exit 2 ;;
esac
