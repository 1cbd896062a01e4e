#!/usr/bin/env bash
# Runs on the GPU machine (the `device` tool), from the repository root, after
# scripts/dev/speed_pack.sh filled .carry/speed here and `.gl/` holds the Vulkan loader's .deb
# (docs/speed.md). Makes the benchmark models, then runs `qwenvk bench` and llama.cpp's
# llama-bench on the same files, one after the other, and prints one table.
#
#   SIZES=0.5B,1.5B TYPES=F16,Q4_0 BENCH="-p 512 -n 128 -r 3" scripts/dev/speed_run.sh
# SKIP_FILES='*-7B-F16' leaves matching models unbenchmarked (made only to quantize from).
# Extra steps before the benchmarks: PRE='cmd' (e.g. the kernel tests on this GPU); after them,
# before the table: POST='cmd' (e.g. a `qwenvk bench --kernels` profile).
set -uo pipefail
S=$PWD/.carry/speed
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export LD_LIBRARY_PATH=$S/lib
export QWENVK_CACHE_DIR=/tmp/qwenvk-cache
mkdir -p /tmp/peer && tar xJf "$S/peer/bin.tar.xz" -C /tmp/peer
"$S/qwenvk" devices 2>&1 | tee "$OUT/devices.txt" | head -40

if [[ -n "${PRE:-}" ]]; then
  eval "$PRE"
fi

t0=$(date +%s)
python3 scripts/dev/make_bench_models.py --tokenizer "${TOKENIZER:-$S/tokenizer}" --conv "$S/peer/conv" \
  --quantize /tmp/peer/peer/llama-quantize --out /tmp/models --sizes "${SIZES:-0.5B}" \
  --types "${TYPES:-F16}" >"$OUT/make_models.log" 2>&1 || { tail -30 "$OUT/make_models.log"; exit 1; }
echo "models made in $(($(date +%s) - t0)) s"; ls -la /tmp/models

BENCH=${BENCH:--p 512 -n 128 -r 3}
for m in /tmp/models/*.gguf; do
  name=$(basename "$m" .gguf)
  if [[ -n "${SKIP_FILES:-}" && "$name" == $SKIP_FILES ]]; then continue; fi
  if [[ -z "${SKIP_OURS:-}" ]]; then
    "$S/qwenvk" bench --model "$m" $BENCH -o json >"$OUT/qwenvk-$name.json" 2>"$OUT/qwenvk-$name.err" ||
      { echo "qwenvk bench failed on $name:"; tail -5 "$OUT/qwenvk-$name.err"; }
  fi
  if [[ -z "${SKIP_PEER:-}" ]]; then
    /tmp/peer/peer/llama-bench -m "$m" -ngl 99 -fa 0,1 $BENCH -o json >"$OUT/llama-$name.json" \
      2>"$OUT/llama-$name.err" || { echo "llama-bench failed on $name:"; tail -5 "$OUT/llama-$name.err"; }
  fi
done
if [[ -n "${POST:-}" ]]; then
  eval "$POST"
fi
python3 scripts/dev/speed_table.py "$OUT"
