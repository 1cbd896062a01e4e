#pragma once
// ggml's block formats on the host (layouts in base/dtype.h's DType, as ggml-common.h defines them).
//  - DequantizeRows is the reference the GPU kernels are tested against and what the loader uses
//    for tensors too small to keep quantized; values round exactly as ggml's dequantize_row_*.
//  - QuantizeRows follows ggml's quantize_row_*_ref, rounding included, so a tensor quantized
//    here has the same bytes as one llama.cpp quantized without an importance matrix.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "base/dtype.h"

namespace qvk {

// rows x cols row-major values as rows * RowBytes(type, cols) bytes of blocks. Types: Q8_0,
// Q4_0, Q4_1, Q5_0, Q5_1 (the K-quants' reference quantizers search scales and are not here).
// Throws Error for another type, a size mismatch, cols not a whole number of blocks or a value
// that is not finite.
std::vector<std::byte> QuantizeRows(DType type, std::span<const float> values, uint32_t rows, uint32_t cols);

// The rows x cols values stored in `bytes` as `type` (every DType, float types included).
// Throws Error when bytes is not rows * RowBytes(type, cols) long.
std::vector<float> DequantizeRows(DType type, std::span<const std::byte> bytes, uint32_t rows, uint32_t cols);

}  // namespace qvk
