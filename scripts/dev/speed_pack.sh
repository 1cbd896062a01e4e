#!/usr/bin/env bash
# Packs what a speed run on the GPU machine needs into .carry/speed (git-ignored): the Release
# qwenvk and its test binary, the shared libraries they link that a bare CUDA image lacks, the
# Qwen2 tokenizer the benchmark models are made with, and llama.cpp's peer tools
# (../shared/peer). docs/speed.md says how the run uses them.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD_DIR:-build-release}
out=.carry/speed
rm -rf "$out" && mkdir -p "$out/lib" "$out/tokenizer" "$out/peer"
strip -o "$out/qwenvk" "$build/qwenvk"
if [[ -x "$build/tests/qwenvk_tests" ]]; then strip -o "$out/qwenvk_tests" "$build/tests/qwenvk_tests"; fi
# Everything outside glibc, libstdc++ and the Vulkan loader (the loader comes from .gl/).
for bin in "$out"/qwenvk*; do
  ldd "$bin" | awk '$3 ~ /^\// {print $3}'
done | sort -u | grep -Ev '/(libc|libm|libdl|libpthread|librt|libgcc_s|libstdc\+\+|libvulkan)\.so' |
  xargs -r cp -L -t "$out/lib"
# NVIDIA's Vulkan driver (libGLX_nvidia) loads libXext, which a bare CUDA image lacks.
cp -L /lib/x86_64-linux-gnu/libXext.so.6 "$out/lib/"
cp tests/data/qwen2-tiny/tokenizer.json tests/data/qwen2-tiny/tokenizer_config.json "$out/tokenizer/"
peer=${PEER_DIR:-../shared/peer}
cp "$peer/bin.tar.xz" "$out/peer/"
cp -r "$peer/conv" "$out/peer/"
du -sh "$out"
