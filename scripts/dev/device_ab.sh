#!/usr/bin/env bash
# A/B speed runs on the GPU machine: several builds of qwenvk on the same real-shaped files in one
# call, alternating, so that a change is measured against its base on the same card and files
# (docs/speed.md, "How a run is made").
#
#   here:   scripts/dev/speed_pack.sh                  (.carry/speed: libraries, llama.cpp's tools)
#           scripts/dev/device_ab.sh add NAME [BUILD]  (BUILD/qwenvk, default build-release, stripped
#                                                       and packed as build NAME, about 2.4 MB)
#           scripts/dev/device_ab.sh vocab             (the tokenizer make_random_gguf.py copies;
#                                                       PYTHON: one with numpy, e.g. /usr/bin/python3
#                                                       and Debian's python3-numpy)
#           scripts/dev/device_tree.sh off
#   there:  RUN='STEPS' BUILDS='A B' scripts/dev/device_ab.sh run
#           with carry [".gl", ".carry/speed/lib", ".carry/speed/peer", ".carry/ab"] (or, in a call
#           that carries .carry/fixtures/0 and unpacks it first, without .carry/speed/lib)
#
# STEPS is bash that may call
#   model NAME TYPE   the path of make_random_gguf.py's NAME-TYPE.gguf, made in /dev/shm at first use
#   tg FILE ARGS      `qwenvk bench --model FILE ARGS` with each of BUILDS in turn, twice (a step may
#                     name others: BUILDS="a c" tg ...); its result rows
#   peer FILE ARGS    llama.cpp's `llama-bench -m FILE -ngl 99 ARGS`, after one unreported run of
#                     the same: cold, its small-model pp512 varied by 8 000-17 000 (session 32)
# e.g. RUN='f=$(model qwen2.5-7B Q4_K_M) && tg $f -p 0 -n 128 -r 3'. Builds, models and llama.cpp's
# tools stay in /dev/shm while the machine is held (it goes back after 30 s idle).
set -uo pipefail
cd "$(dirname "$0")/../.."
ab=.carry/ab
case "${1:-}" in
  add)
    [[ -n "${2:-}" ]] || { echo "usage: $0 add NAME [BUILD_DIR]" >&2; exit 2; }
    mkdir -p "$ab" && strip -o "$ab/qwenvk-$2" "${3:-build-release}/qwenvk" && xz -f -T2 "$ab/qwenvk-$2"
    ls -la "$ab" ;;
  vocab)
    mkdir -p "$ab"
    PYTHONPATH=${PEER_DIR:-../shared/peer}/conv/gguf-py ${PYTHON:-python3} scripts/dev/vocab_gguf.py \
      tests/data/gguf/qwen2-tiny-Q4_K_M.gguf "$ab/vocab.gguf" && xz -f -T2 "$ab/vocab.gguf" ;;
  run)
    S=$PWD/.carry/speed
    for deb in .gl/*.deb; do dpkg -x "$deb" /; done
    ldconfig
    export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
    # The libraries: speed_pack.sh's, or the same ones from the fixtures' part 0 where a call
    # carries that instead (scripts/dev/device_fixtures.sh unpack puts them in /tmp/qwenvk-fx/lib).
    lib=$S/lib
    [[ -d "$lib" ]] || lib=/tmp/qwenvk-fx/lib
    [[ -d "$lib" ]] || { echo "no libraries: carry .carry/speed/lib, or .carry/fixtures/0 and unpack it first" >&2; exit 1; }
    export LD_LIBRARY_PATH=$lib QWENVK_CACHE_DIR=/dev/shm/qwenvk-cache
    bin=/dev/shm/ab-bin models=/dev/shm/ab-models peer_dir=/dev/shm/ab-peer
    mkdir -p "$bin" "$models"
    for b in ${BUILDS:?name the builds}; do
      [[ -e "$ab/qwenvk-$b.xz" ]] || { echo "no build $b in $ab" >&2; exit 1; }
    done
    # Every carried build, not only BUILDS': a step may name others (BUILDS="a c" tg ...), and
    # session 29 lost a call's comparisons to builds left packed.
    for packed in "$ab"/qwenvk-*.xz; do
      b=$(basename "$packed" .xz)
      if [[ ! -x "$bin/$b" || "$packed" -nt "$bin/$b" ]]; then
        xz -dc "$packed" >"$bin/$b" && chmod +x "$bin/$b"
      fi
    done
    [[ -x "$peer_dir/peer/llama-bench" ]] || { mkdir -p "$peer_dir" && tar xJf "$S/peer/bin.tar.xz" -C "$peer_dir"; }
    [[ -f /dev/shm/ab-vocab.gguf ]] || xz -dc "$ab/vocab.gguf.xz" >/dev/shm/ab-vocab.gguf
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
    model() {
      local f=$models/$1-$2.gguf
      if [[ ! -f "$f" ]]; then
        PYTHONPATH=$S/peer/conv/gguf-py python3 scripts/dev/make_random_gguf.py --vocab-from /dev/shm/ab-vocab.gguf \
          --out "$models" --models "$1" --types "$2" >&2 || return 1
      fi
      echo "$f"
    }
    tg() {
      local f=$1
      shift
      for _ in 1 2; do
        for b in $BUILDS; do
          echo "== $b $(basename "$f") $*"
          [[ -x "$bin/qwenvk-$b" ]] || { echo "no build $b in $ab"; continue; }
          timeout 300 "$bin/qwenvk-$b" bench --model "$f" --no-save "$@" 2>&1 | grep -E '^\|.*(pp|tg)[0-9]'
        done
      done
    }
    peer() {
      local f=$1
      shift
      echo "== llama.cpp $(basename "$f") $*"
      timeout 300 "$peer_dir/peer/llama-bench" -m "$f" -ngl 99 "$@" >/dev/null 2>&1
      timeout 300 "$peer_dir/peer/llama-bench" -m "$f" -ngl 99 "$@" 2>&1 | grep -E '^\|'
    }
    eval "${RUN:?give the steps}" ;;
  *) echo "usage: $0 add NAME [BUILD_DIR] | vocab | run" >&2; exit 2 ;;
esac
