// Weights in ggml's block formats (ggml-common.h), read in place: element i of a row-major matrix
// is element i % QK of block i / QK. Rows hold whole blocks (ops checks cols), so the flat index
// works across every row of a slice. Q8_0, Q4_0, Q5_0 and Q6_K blocks lie regrouped
// (regroup.glsl). Included by weights.glsl for the WEIGHT_Q* variants.
//
// Products are `precise` so that no compiler fuses them into an fma: the values then round
// exactly as ggml's dequantize_row_* (and model/quantize.cpp) compute them.
#extension GL_EXT_shader_8bit_storage : require

// The same binding seen as bytes and as f16: every block keeps its f16 scales at even offsets.
layout(binding = WEIGHT_BINDING) readonly buffer WeightBytes { uint8_t weight_bytes[]; };
layout(binding = WEIGHT_BINDING) readonly buffer WeightHalves { float16_t weight_halves[]; };

uint qbyte(uint offset) { return uint(weight_bytes[offset]); }
int qsigned(uint offset) { return int(qbyte(offset) << 24) >> 24; }
float qhalf(uint offset) { return float(weight_halves[offset >> 1]); }

// Low nibble of byte j % 16 for the first half of a 32-element group, high nibble for the second.
uint nibble32(uint offset, uint j) { return (qbyte(offset + (j & 15u)) >> ((j >> 4) * 4u)) & 15u; }

// Bit j of the 32 high bits stored little-endian at offset (Q5_0, Q5_1).
uint high_bit32(uint offset, uint j) { return (qbyte(offset + (j >> 3)) >> (j & 7u)) & 1u; }

// Q4_K / Q5_K: 6-bit scale and min of sub-block s (0..7) from the 12 packed bytes at offset.
// Sub-blocks 0-3 use the low 6 bits of bytes s and s + 4; sub-blocks 4-7 take their low 4 bits
// from byte s + 4's nibbles and their top 2 bits from the spare top bits of bytes s - 4 and s.
uvec2 k_scale_min(uint offset, uint s) {
  if (s < 4u) return uvec2(qbyte(offset + s) & 63u, qbyte(offset + s + 4u) & 63u);
  const uint low = qbyte(offset + s + 4u);
  return uvec2((low & 15u) | ((qbyte(offset + s - 4u) >> 6) << 4), (low >> 4) | ((qbyte(offset + s) >> 6) << 4));
}

#if defined(WEIGHT_Q8_0) || defined(WEIGHT_Q4_0) || defined(WEIGHT_Q5_0) || defined(WEIGHT_Q6_K)
#include "regroup.glsl"
// Byte offsets of block k's scale (x) and the rest of it (y), regrouped as regroup.glsl says.
uvec2 block_bytes_at(uint k, uint block_halfwords) {
  return 2u * block_halfwords_at(k, block_halfwords);
}
#endif

#if defined(WEIGHT_Q8_0)
// f16 d, int8 q[32]: w = q * d
float load_weight(uint i) {
  const uvec2 at = block_bytes_at(i >> 5, 17u);
  precise float w = float(qsigned(at.y + (i & 31u))) * qhalf(at.x);
  return w;
}
#elif defined(WEIGHT_Q4_0)
// f16 d, 4-bit q[32] in 16 bytes: w = (q - 8) * d
float load_weight(uint i) {
  const uvec2 at = block_bytes_at(i >> 5, 9u);
  precise float w = float(int(nibble32(at.y, i & 31u)) - 8) * qhalf(at.x);
  return w;
}
#elif defined(WEIGHT_Q4_1)
// f16 d, f16 m, 4-bit q[32]: w = q * d + m
float load_weight(uint i) {
  const uint base = (i >> 5) * 20u;
  precise float w = float(nibble32(base + 4u, i & 31u)) * qhalf(base) + qhalf(base + 2u);
  return w;
}
#elif defined(WEIGHT_Q5_0)
// f16 d, 32 high bits, 4-bit low parts: w = (q - 16) * d
float load_weight(uint i) {
  const uvec2 at = block_bytes_at(i >> 5, 11u);
  const uint j = i & 31u;
  const uint q = nibble32(at.y + 4u, j) | (high_bit32(at.y, j) << 4);
  precise float w = float(int(q) - 16) * qhalf(at.x);
  return w;
}
#elif defined(WEIGHT_Q5_1)
// f16 d, f16 m, 32 high bits, 4-bit low parts: w = q * d + m
float load_weight(uint i) {
  const uint base = (i >> 5) * 24u;
  const uint j = i & 31u;
  const uint q = nibble32(base + 8u, j) | (high_bit32(base + 4u, j) << 4);
  precise float w = float(q) * qhalf(base) + qhalf(base + 2u);
  return w;
}
#elif defined(WEIGHT_Q4_K) || defined(WEIGHT_Q5_K)
// f16 d, f16 dmin, 12 bytes of packed 6-bit scales and mins, (Q5_K: 32 bytes of high bits,)
// 128 bytes of 4-bit quants. Each 64 elements share 32 quant bytes: the first 32 elements are
// their low nibbles (sub-block 2c), the next 32 their high nibbles (sub-block 2c + 1).
// w = d * scale[s] * q - dmin * min[s]
#if defined(WEIGHT_Q4_K)
#define K_BLOCK_BYTES 144u
#define K_QS_OFFSET 16u
#else
#define K_BLOCK_BYTES 176u
#define K_QS_OFFSET 48u
#endif
float load_weight(uint i) {
  const uint base = (i >> 8) * K_BLOCK_BYTES;
  const uint j = i & 255u;
  const uint s = j >> 5;  // sub-block of 32
  const uint l = j & 31u;
  uint q = (qbyte(base + K_QS_OFFSET + (j >> 6) * 32u + l) >> ((s & 1u) * 4u)) & 15u;
#if defined(WEIGHT_Q5_K)
  // Bit s of high byte l is the fifth bit of element l of sub-block s.
  q |= ((qbyte(base + 16u + l) >> s) & 1u) << 4;
#endif
  const uvec2 sm = k_scale_min(base + 4u, s);
  precise float scale = qhalf(base) * float(sm.x);
  precise float min_value = qhalf(base + 2u) * float(sm.y);
  precise float w = scale * float(q) - min_value;
  return w;
}
#elif defined(WEIGHT_Q6_K)
// 128 bytes of low 4 bits, 64 bytes of high 2 bits, int8 scales[16], f16 d (last; regrouped
// apart, so the rest keeps its offsets). Each 128 elements use 64 low bytes and 32 high bytes;
// quarter r of them (32 elements) takes nibble r / 2 of low byte 32 * (r % 2) + l and bits
// 2r..2r+1 of high byte l. w = d * scale[j / 16] * (q - 32)
float load_weight(uint i) {
  const uvec2 at = block_bytes_at(i >> 8, 105u);
  const uint base = at.y;
  const uint j = i & 255u;
  const uint half128 = j >> 7;
  const uint r = (j >> 5) & 3u;
  const uint l = j & 31u;
  const uint low = (qbyte(base + half128 * 64u + (r & 1u) * 32u + l) >> ((r >> 1) * 4u)) & 15u;
  const uint high = (qbyte(base + 128u + half128 * 32u + l) >> (2u * r)) & 3u;
  precise float scale = qhalf(at.x) * float(qsigned(base + 192u + (j >> 4)));
  precise float w = scale * float(int(low | (high << 4)) - 32);
  return w;
}
#else
#error "quant.glsl: define one WEIGHT_Q* type"
#endif
