#include "base/dtype.h"

#include <iterator>

#include <fmt/format.h>

#include "base/error.h"

namespace qvk {
namespace {

struct TypeInfo {
  const char* name;
  uint32_t block_elements;
  uint32_t block_bytes;
};

// Indexed by DType. Block sizes are ggml's: QK = 32 for the *_0 / *_1 types, QK_K = 256 for K-quants.
constexpr TypeInfo kTypes[] = {
    {"F32", 1, 4},    {"F16", 1, 2},    {"BF16", 1, 2},     {"Q8_0", 32, 34},   {"Q4_0", 32, 18},   {"Q4_1", 32, 20},
    {"Q5_0", 32, 22}, {"Q5_1", 32, 24}, {"Q4_K", 256, 144}, {"Q5_K", 256, 176}, {"Q6_K", 256, 210},
};
static_assert(std::size(kTypes) == kDTypeCount, "one kTypes row per DType");

const TypeInfo& Info(DType type) {
  const auto index = static_cast<size_t>(type);
  if (index >= std::size(kTypes)) throw Error(fmt::format("unknown weight type {}", index));
  return kTypes[index];
}

}  // namespace

const char* DTypeName(DType type) {
  return static_cast<size_t>(type) < std::size(kTypes) ? kTypes[static_cast<size_t>(type)].name : "?";
}

uint32_t BlockElements(DType type) {
  return Info(type).block_elements;
}

uint32_t BlockBytes(DType type) {
  return Info(type).block_bytes;
}

uint64_t RowBytes(DType type, uint32_t cols) {
  const TypeInfo& info = Info(type);
  if (cols % info.block_elements != 0) {
    throw Error(fmt::format("a row of {} {} elements is not a whole number of {}-element blocks", cols, info.name,
                            info.block_elements));
  }
  return uint64_t{cols / info.block_elements} * info.block_bytes;
}

}  // namespace qvk
