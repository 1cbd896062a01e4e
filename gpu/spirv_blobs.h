#pragma once
// SPIR-V of every shader variant, embedded at build time (cmake/EmbedSpirv.cmake generates the
// definition of AllSpirv in the build tree).
#include <cstdint>
#include <span>
#include <string_view>

namespace qvk {

struct SpirvBlob {
  std::string_view name;  // the variant's name in shaders/kernels.cmake
  std::span<const uint32_t> words;
};

std::span<const SpirvBlob> AllSpirv();

}  // namespace qvk
