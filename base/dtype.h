#pragma once
// Weight storage types. F32, F16 and BF16 store each element; the others are ggml's block formats
// (ggml-common.h byte for byte): each run of BlockElements(type) elements of a row is one block
// of BlockBytes(type) bytes holding f16 scales and packed integer quants.
#include <cstdint>

namespace qvk {

enum class DType : uint32_t { F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K };
constexpr uint32_t kDTypeCount = static_cast<uint32_t>(DType::Q6_K) + 1;

const char* DTypeName(DType type);
uint32_t BlockElements(DType type);  // 1 for F32, F16 and BF16
uint32_t BlockBytes(DType type);
inline bool IsQuantized(DType type) {
  return BlockElements(type) > 1;
}
// Bytes of a row of `cols` elements; throws Error when cols is not a whole number of blocks.
uint64_t RowBytes(DType type, uint32_t cols);

}  // namespace qvk
