// Sections: byte access / dequantizers (one per block type) / quantizers / entry points
#include "model/quantize.h"

#include <algorithm>
#include <bit>
#include <cfloat>
#include <climits>
#include <cmath>
#include <utility>

#include <fmt/format.h>

#include "base/error.h"
#include "base/numeric.h"

namespace qvk {
namespace {

// --- byte access: blocks are little-endian and unaligned --------------------------------------

uint8_t U8(const std::byte* p) { return std::to_integer<uint8_t>(*p); }
int8_t I8(const std::byte* p) { return static_cast<int8_t>(U8(p)); }
uint16_t U16(const std::byte* p) { return static_cast<uint16_t>(U8(p) | U8(p + 1) << 8); }
uint32_t U32(const std::byte* p) { return U16(p) | static_cast<uint32_t>(U16(p + 2)) << 16; }
float F16(const std::byte* p) { return HalfToFloat(U16(p)); }

void PutU8(std::byte* p, uint32_t v) { *p = static_cast<std::byte>(v & 0xff); }
void PutU32(std::byte* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) PutU8(p + i, v >> (8 * i));
}
// Rounds to nearest even, as GGML_FP32_TO_FP16.
void PutF16(std::byte* p, float v) {
  const uint16_t h = FloatToHalf(v);
  PutU8(p, h);
  PutU8(p + 1, h >> 8);
}

// --- dequantizers: one block at b to its elements at y, in ggml's order of float operations ----

void DequantizeQ8_0(const std::byte* b, float* y) {
  const float d = F16(b);
  for (int j = 0; j < 32; ++j) y[j] = I8(b + 2 + j) * d;
}

// The 32 quants of the *_0 / *_1 types: element j < 16 is the low nibble of byte j, element
// j + 16 its high nibble; Q5 types add bit j of a little-endian u32 as the fifth bit.
void DequantizeQ4_0(const std::byte* b, float* y) {
  const float d = F16(b);
  for (int j = 0; j < 16; ++j) {
    const uint8_t q = U8(b + 2 + j);
    y[j] = ((q & 0x0F) - 8) * d;
    y[j + 16] = ((q >> 4) - 8) * d;
  }
}

void DequantizeQ4_1(const std::byte* b, float* y) {
  const float d = F16(b), m = F16(b + 2);
  for (int j = 0; j < 16; ++j) {
    const uint8_t q = U8(b + 4 + j);
    y[j] = (q & 0x0F) * d + m;
    y[j + 16] = (q >> 4) * d + m;
  }
}

void DequantizeQ5_0(const std::byte* b, float* y) {
  const float d = F16(b);
  const uint32_t qh = U32(b + 2);
  for (int j = 0; j < 16; ++j) {
    const uint8_t q = U8(b + 6 + j);
    y[j] = (static_cast<int>((q & 0x0F) | ((qh >> j) & 1) << 4) - 16) * d;
    y[j + 16] = (static_cast<int>((q >> 4) | ((qh >> (j + 16)) & 1) << 4) - 16) * d;
  }
}

void DequantizeQ5_1(const std::byte* b, float* y) {
  const float d = F16(b), m = F16(b + 2);
  const uint32_t qh = U32(b + 4);
  for (int j = 0; j < 16; ++j) {
    const uint8_t q = U8(b + 8 + j);
    y[j] = static_cast<int>((q & 0x0F) | ((qh >> j) & 1) << 4) * d + m;
    y[j + 16] = static_cast<int>((q >> 4) | ((qh >> (j + 16)) & 1) << 4) * d + m;
  }
}

// Q4_K / Q5_K: 6-bit scale and min of sub-block s (0..7) from the 12 packed bytes (ggml's
// get_scale_min_k4): sub-blocks 0-3 in the low 6 bits of bytes s and s + 4; sub-blocks 4-7 in
// the nibbles of byte s + 4, topped with the spare high bits of bytes s - 4 and s.
std::pair<uint8_t, uint8_t> KScaleMin(const std::byte* scales, int s) {
  if (s < 4) return {U8(scales + s) & 63, U8(scales + s + 4) & 63};
  const uint8_t low = U8(scales + s + 4);
  return {static_cast<uint8_t>((low & 0x0F) | (U8(scales + s - 4) >> 6) << 4),
          static_cast<uint8_t>((low >> 4) | (U8(scales + s) >> 6) << 4)};
}

// f16 d, f16 dmin, 12 scale bytes, [Q5_K: 32 high-bit bytes,] 128 quant bytes. Each 64 elements
// use 32 quant bytes: low nibbles for sub-block 2c, high nibbles for 2c + 1; Q5_K's fifth bit of
// element l of sub-block s is bit s of high byte l.
template <bool kFiveBits>
void DequantizeQ45_K(const std::byte* b, float* y) {
  const float d = F16(b), dmin = F16(b + 2);
  const std::byte* scales = b + 4;
  const std::byte* qh = b + 16;
  const std::byte* q = b + (kFiveBits ? 48 : 16);
  for (int c = 0; c < 4; ++c, q += 32, y += 64) {
    const auto [sc0, m0] = KScaleMin(scales, 2 * c);
    const auto [sc1, m1] = KScaleMin(scales, 2 * c + 1);
    const float d0 = d * sc0, min0 = dmin * m0, d1 = d * sc1, min1 = dmin * m1;
    for (int l = 0; l < 32; ++l) {
      int q0 = U8(q + l) & 0x0F, q1 = U8(q + l) >> 4;
      if (kFiveBits) {
        q0 += (U8(qh + l) >> (2 * c) & 1) * 16;
        q1 += (U8(qh + l) >> (2 * c + 1) & 1) * 16;
      }
      y[l] = d0 * q0 - min0;
      y[l + 32] = d1 * q1 - min1;
    }
  }
}

// 128 low-nibble bytes, 64 bytes of 2-bit high parts, int8 scales[16], f16 d. Each 128 elements
// use 64 low bytes and 32 high bytes: their quarter r takes nibble r / 2 of low byte
// 32 * (r % 2) + l and bits 2r, 2r + 1 of high byte l; scale j / 16 for element j.
void DequantizeQ6_K(const std::byte* b, float* y) {
  const float d = F16(b + 208);
  const std::byte* ql = b;
  const std::byte* qh = b + 128;
  const std::byte* sc = b + 192;
  for (int n = 0; n < 2; ++n, ql += 64, qh += 32, sc += 8, y += 128) {
    for (int l = 0; l < 32; ++l) {
      const int s = l / 16;
      const int q1 = ((U8(ql + l) & 0x0F) | ((U8(qh + l) >> 0) & 3) << 4) - 32;
      const int q2 = ((U8(ql + l + 32) & 0x0F) | ((U8(qh + l) >> 2) & 3) << 4) - 32;
      const int q3 = ((U8(ql + l) >> 4) | ((U8(qh + l) >> 4) & 3) << 4) - 32;
      const int q4 = ((U8(ql + l + 32) >> 4) | ((U8(qh + l) >> 6) & 3) << 4) - 32;
      y[l] = d * I8(sc + s) * q1;
      y[l + 32] = d * I8(sc + s + 2) * q2;
      y[l + 64] = d * I8(sc + s + 4) * q3;
      y[l + 96] = d * I8(sc + s + 6) * q4;
    }
  }
}

// --- quantizers: ggml's quantize_row_*_ref for one block of 32 ---------------------------------

// ggml converts with C casts, undefined for NaN and infinities (a block of values so tiny that
// 1/d overflows); x86, where llama.cpp quantizes, yields INT_MIN, whose low byte is 0.
int Truncate(float v) { return std::isfinite(v) ? static_cast<int>(v) : INT_MIN; }
int TruncateInt8(float v) { return static_cast<int8_t>(Truncate(v)); }

// The value of largest magnitude, the first of equal magnitudes.
float SignedAbsMax(const float* x) {
  float amax = 0, max = 0;
  for (int j = 0; j < 32; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

std::pair<float, float> MinMax(const float* x) {
  float min = FLT_MAX, max = -FLT_MAX;
  for (int j = 0; j < 32; ++j) {
    min = std::min(min, x[j]);
    max = std::max(max, x[j]);
  }
  return {min, max};
}

void QuantizeQ8_0(const float* x, std::byte* b) {
  float amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  PutF16(b, d);
  for (int j = 0; j < 32; ++j) PutU8(b + 2 + j, static_cast<uint32_t>(Truncate(std::round(x[j] * id))));
}

void QuantizeQ4_0(const float* x, std::byte* b) {
  const float d = SignedAbsMax(x) / -8;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  PutF16(b, d);
  for (int j = 0; j < 16; ++j) {
    const int q0 = std::min(15, TruncateInt8(x[j] * id + 8.5f));
    const int q1 = std::min(15, TruncateInt8(x[j + 16] * id + 8.5f));
    PutU8(b + 2 + j, static_cast<uint32_t>(q0 | q1 << 4));
  }
}

void QuantizeQ4_1(const float* x, std::byte* b) {
  const auto [min, max] = MinMax(x);
  const float d = (max - min) / 15;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  PutF16(b, d);
  PutF16(b + 2, min);
  for (int j = 0; j < 16; ++j) {
    const int q0 = std::min(15, TruncateInt8((x[j] - min) * id + 0.5f));
    const int q1 = std::min(15, TruncateInt8((x[j + 16] - min) * id + 0.5f));
    PutU8(b + 4 + j, static_cast<uint32_t>(q0 | q1 << 4));
  }
}

void QuantizeQ5_0(const float* x, std::byte* b) {
  const float d = SignedAbsMax(x) / -16;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  PutF16(b, d);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const auto q0 = static_cast<uint32_t>(std::min(31, TruncateInt8(x[j] * id + 16.5f)));
    const auto q1 = static_cast<uint32_t>(std::min(31, TruncateInt8(x[j + 16] * id + 16.5f)));
    PutU8(b + 6 + j, (q0 & 0x0F) | (q1 & 0x0F) << 4);
    qh |= (q0 >> 4) << j | (q1 >> 4) << (j + 16);
  }
  PutU32(b + 2, qh);
}

void QuantizeQ5_1(const float* x, std::byte* b) {
  const auto [min, max] = MinMax(x);
  const float d = (max - min) / 31;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  PutF16(b, d);
  PutF16(b + 2, min);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    // ggml's (uint8_t) cast: no clamp, the quotient stays within 0..31.
    const auto q0 = static_cast<uint8_t>(Truncate((x[j] - min) * id + 0.5f));
    const auto q1 = static_cast<uint8_t>(Truncate((x[j + 16] - min) * id + 0.5f));
    PutU8(b + 8 + j, static_cast<uint32_t>((q0 & 0x0F) | (q1 & 0x0F) << 4));
    qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j | static_cast<uint32_t>((q1 >> 4) & 1) << (j + 16);
  }
  PutU32(b + 4, qh);
}

// --- entry points -----------------------------------------------------------------------------

uint64_t CheckedElements(DType type, uint32_t rows, uint32_t cols) {
  RowBytes(type, cols);  // throws unless cols is a whole number of blocks
  return static_cast<uint64_t>(rows) * cols;
}

}  // namespace

std::vector<std::byte> QuantizeRows(DType type, std::span<const float> values, uint32_t rows, uint32_t cols) {
  void (*quantize)(const float*, std::byte*) = nullptr;
  switch (type) {
    case DType::Q8_0: quantize = QuantizeQ8_0; break;
    case DType::Q4_0: quantize = QuantizeQ4_0; break;
    case DType::Q4_1: quantize = QuantizeQ4_1; break;
    case DType::Q5_0: quantize = QuantizeQ5_0; break;
    case DType::Q5_1: quantize = QuantizeQ5_1; break;
    default: throw Error(fmt::format("cannot quantize to {}: Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 only", DTypeName(type)));
  }
  const uint64_t elements = CheckedElements(type, rows, cols);
  if (values.size() != elements) {
    throw Error(fmt::format("QuantizeRows: {} values for {} x {}", values.size(), rows, cols));
  }
  if (!std::all_of(values.begin(), values.end(), [](float v) { return std::isfinite(v); })) {
    throw Error(fmt::format("cannot quantize to {}: a value is not finite", DTypeName(type)));
  }
  const uint32_t block_bytes = BlockBytes(type);
  std::vector<std::byte> out(elements / 32 * block_bytes);
  for (uint64_t block = 0; block < elements / 32; ++block) quantize(&values[block * 32], &out[block * block_bytes]);
  return out;
}

std::vector<float> DequantizeRows(DType type, std::span<const std::byte> bytes, uint32_t rows, uint32_t cols) {
  const uint64_t elements = CheckedElements(type, rows, cols);
  const uint64_t expected = rows * RowBytes(type, cols);
  if (bytes.size() != expected) {
    throw Error(fmt::format("{} x {} {} takes {} bytes, not {}", rows, cols, DTypeName(type), expected, bytes.size()));
  }
  std::vector<float> out(elements);
  const std::byte* p = bytes.data();
  switch (type) {
    case DType::F32:
      for (uint64_t i = 0; i < elements; ++i) out[i] = std::bit_cast<float>(U32(p + 4 * i));
      return out;
    case DType::F16:
      for (uint64_t i = 0; i < elements; ++i) out[i] = F16(p + 2 * i);
      return out;
    case DType::BF16:
      for (uint64_t i = 0; i < elements; ++i) out[i] = Bf16ToFloat(U16(p + 2 * i));
      return out;
    default: break;
  }
  void (*dequantize)(const std::byte*, float*) = nullptr;
  switch (type) {
    case DType::Q8_0: dequantize = DequantizeQ8_0; break;
    case DType::Q4_0: dequantize = DequantizeQ4_0; break;
    case DType::Q4_1: dequantize = DequantizeQ4_1; break;
    case DType::Q5_0: dequantize = DequantizeQ5_0; break;
    case DType::Q5_1: dequantize = DequantizeQ5_1; break;
    case DType::Q4_K: dequantize = DequantizeQ45_K<false>; break;
    case DType::Q5_K: dequantize = DequantizeQ45_K<true>; break;
    case DType::Q6_K: dequantize = DequantizeQ6_K; break;
    default: throw Error(fmt::format("cannot dequantize {}", DTypeName(type)));
  }
  const uint32_t block_elements = BlockElements(type), block_bytes = BlockBytes(type);
  for (uint64_t block = 0; block < elements / block_elements; ++block) {
    dequantize(p + block * block_bytes, &out[block * block_elements]);
  }
  return out;
}

}  // namespace qvk
