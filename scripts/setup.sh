#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages QwenVK builds and tests with, if any are missing.
# Does nothing when everything is there; uses sudo when not root. With --tests, also Node.js and
# npm, which run the OpenAI client tests (tests/openai-client).
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libvulkan-dev glslc mesa-vulkan-drivers vulkan-validationlayers
  libfmt-dev libspdlog-dev libcli11-dev nlohmann-json3-dev libimath-dev libgtest-dev
  libpcre2-dev libutf8proc-dev
  libsqlite3-dev libglfw3-dev libimgui-dev libstb-dev libcpp-httplib-dev
  xvfb xauth fonts-dejavu-core fonts-noto-cjk
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# A Node installed another way (NodeSource, nvm) counts: its nodejs package may bundle npm and
# conflict with Debian's.
if [ "${1:-}" = "--tests" ]; then
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
