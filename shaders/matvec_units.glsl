// Weight units for matvec.comp: the piece of a weight row that one invocation reads with a few
// wide loads and dequantizes at once. A unit lies inside one block and yields UNIT_RUNS runs of 8
// consecutive columns, each as two vec4; a block's scales are decoded once per unit, never per
// element. Each type reads its blocks as the widest words its block size keeps aligned: 16 bytes
// (F32, F16, BF16, Q4_K, Q5_K; Q8_0's quants, regrouped), 8 (Q5_1; Q4_0's and Q6_K's, regrouped)
// or 4 (Q4_1; Q5_0's, regrouped).
//
// Quantized runs come out as their integers (q minus the format's offset) with the run's scale
// (and min) beside them, so that matvec.comp multiplies by the scale once per run of 8 rather than
// once per weight. The integers become floats through small_uints and placed_values, never an
// int-to-float conversion: NVIDIA GPUs convert at an eighth of their FMA rate, which made every
// quantized matvec instruction-bound on an H200; placed_values also skips the shift of each field
// (decode of 7B Q4_0 +3% on an H200, docs/speed.md session 19).
//
// The layouts are ggml's (ggml-common.h), Q8_0's and Q4_0's regrouped (regroup.glsl), the ones
// quant.glsl reads an element at a time. A run's
// products are exact: with one column of X set to 1 and the rest 0, matvec.comp's `precise`
// scale * integer - min is exactly the value ggml's dequantize_row_* computes (tests/matvec_test.cpp
// checks every value against the host dequantizer).
//
// Each type defines:
//   UNIT_COLS    columns per unit (on average: a unit's runs need not be adjacent)
//   BLOCK_UNITS  units per block
//   UNIT_RUNS    runs of 8 columns per unit
//   Unit load_unit(uint u)                      unit u of the binding (row * units per row + unit in the row)
//   void unit_run(Unit w, uint r, out vec4 lo, out vec4 hi)   run r's 8 values (quantized: integers)
//   (and, for every type, unit_run_values: run r's 8 weights, scaled)
//   uint run_column(uint part, uint r)          column of run r inside the block, for unit `part` of the block
// and quantized types also
//   UNIT_SCALED, float run_scale(Unit w, uint r)   the run's weights are run_scale * its integers
//   UNIT_MIN, float run_min(Unit w, uint r)        ... minus run_min (K-quants; Q4_1 and Q5_1 add m)
//
// Sections: bit fields / F32 / F16 and BF16 / 16-bit words: Q8_0, Q4_0 and Q5_0, Q6_K / Q4_1 / Q5_1 / Q4_K and Q5_K /
// values

// --- bit fields -----------------------------------------------------------------------------

// Four 4-bit fields of a word: bits shift..shift+3 of each byte.
uvec4 nibbles(uint word, uint shift) { return (uvec4(word) >> (uvec4(0u, 8u, 16u, 24u) + shift)) & 15u; }

// Bit `bit` of each byte of a word.
uvec4 byte_bits(uint word, uint bit) { return (uvec4(word) >> (uvec4(0u, 8u, 16u, 24u) + bit)) & 1u; }

// Four consecutive bits of a word, from bit `first`.
uvec4 bits4(uint word, uint first) { return (uvec4(word) >> (uvec4(0u, 1u, 2u, 3u) + first)) & 1u; }

// q - offset as exact floats, for integers q below 2^23, without a conversion instruction: under
// the exponent bits of 2^23, q's bits are the float 2^23 + q (an OR that fuses with the mask that
// extracted q), and one exact subtraction removes 2^23 and the offset.
vec4 small_uints(uvec4 q, float offset) { return uintBitsToFloat(q | 0x4B000000u) - (8388608.0 + offset); }
vec2 small_uints(uvec2 q, float offset) { return uintBitsToFloat(q | 0x4B000000u) - (8388608.0 + offset); }

// The same for the fields of a word's four bytes (field_mask at bit `shift` of each), in two
// instructions a value where a shift, the mask and the subtraction take three: each field of bytes
// 0 and 1 is masked in place under the exponent of 2^23, as the float 2^23 + q * 2^b for its bit b
// (below 16, so never into the exponent), and one exact fma scales that by 2^-b and moves it by
// -(2^(23-b) + offset). Bytes 2 and 3 are those of the word shifted by 16: one shift for four values.
vec4 placed_values(uint word, uint field_mask, uint shift, float offset) {
  const uint upper = word >> 16;
  const uint low_mask = field_mask << shift, high_mask = field_mask << (shift + 8u);
  const uvec4 placed = uvec4(word & low_mask, word & high_mask, upper & low_mask, upper & high_mask) | 0x4B000000u;
  const vec4 inv_place = vec4(1.0, 1.0 / 256.0, 1.0, 1.0 / 256.0) / float(1u << shift);
  precise vec4 values = fma(uintBitsToFloat(placed), inv_place, -(8388608.0 * inv_place + offset));
  return values;
}
// Four 4-bit fields (bits shift..shift+3 of each byte) as q - offset.
vec4 nibble_values(uint word, uint shift, float offset) { return placed_values(word, 15u, shift, offset); }
// The four bytes as q - offset.
vec4 byte_values(uint word, float offset) { return placed_values(word, 255u, 0u, offset); }

// --- F32 ------------------------------------------------------------------------------------

#if defined(WEIGHT_F32)
#define UNIT_COLS 8u
#define BLOCK_UNITS 1u
#define UNIT_RUNS 1u
layout(binding = WEIGHT_BINDING) readonly buffer WeightVec4 { vec4 weight_vec4[]; };
struct Unit {
  vec4 lo, hi;
};
Unit load_unit(uint u) { return Unit(weight_vec4[2u * u], weight_vec4[2u * u + 1u]); }
void unit_run(Unit w, uint r, out vec4 lo, out vec4 hi) {
  lo = w.lo;
  hi = w.hi;
}
uint run_column(uint part, uint r) { return 0u; }

// --- F16 and BF16 ---------------------------------------------------------------------------

#elif defined(WEIGHT_F16) || defined(WEIGHT_BF16)
#define UNIT_COLS 8u
#define BLOCK_UNITS 1u
#define UNIT_RUNS 1u
layout(binding = WEIGHT_BINDING) readonly buffer WeightWords4 { uvec4 weight_words4[]; };
struct Unit {
  uvec4 words;  // 8 values, the first in the low half of x
};
Unit load_unit(uint u) { return Unit(weight_words4[u]); }
#if defined(WEIGHT_F16)
vec2 pair(uint word) { return unpackHalf2x16(word); }
#else
// bf16 is the top half of an f32.
vec2 pair(uint word) { return vec2(uintBitsToFloat(word << 16), uintBitsToFloat(word & 0xffff0000u)); }
#endif
void unit_run(Unit w, uint r, out vec4 lo, out vec4 hi) {
  lo = vec4(pair(w.words.x), pair(w.words.y));
  hi = vec4(pair(w.words.z), pair(w.words.w));
}
uint run_column(uint part, uint r) { return 0u; }

// --- regrouped 16-bit words: Q8_0, Q4_0 and Q5_0, Q6_K --------------------------------------

#elif defined(WEIGHT_Q8_0) || defined(WEIGHT_Q4_0) || defined(WEIGHT_Q5_0) || defined(WEIGHT_Q6_K)
// Blocks of an odd number of 16-bit words, which ggml's layout leaves only 2-byte aligned. They lie
// regrouped (regroup.glsl): a block's scale is read as a halfword, and the rest as aligned words
// of 16 bytes (Q8_0), 8 (Q4_0, Q6_K) or 4 (Q5_0, whose 20 bytes a block keep no more).
#include "regroup.glsl"
layout(binding = WEIGHT_BINDING) readonly buffer WeightHalfwords { uint16_t weight_u16[]; };
layout(binding = WEIGHT_BINDING) readonly buffer WeightWords { uint weight_u32[]; };
layout(binding = WEIGHT_BINDING) readonly buffer WeightWords2 { uvec2 weight_words2[]; };
layout(binding = WEIGHT_BINDING) readonly buffer WeightWords4 { uvec4 weight_words4[]; };
float half_at(uint i) { return unpackHalf2x16(uint(weight_u16[i])).x; }

#if defined(WEIGHT_Q8_0)
// 17 halfwords: f16 d, int8 q[32]. A unit is half a block, 16 consecutive values: w = q * d.
#define UNIT_COLS 16u
#define BLOCK_UNITS 2u
#define UNIT_RUNS 2u
#define UNIT_SCALED
struct Unit {
  float d;
  uvec4 q;  // 16 signed bytes
};
Unit load_unit(uint u) {
  const uvec2 at = block_halfwords_at(u >> 1, 17u);
  return Unit(half_at(at.x), weight_words4[(at.y >> 3) + (u & 1u)]);
}
// Signed bytes: flipping the sign bit gives q + 128.
vec4 q8_values(uint word) { return byte_values(word ^ 0x80808080u, 128.0); }
void unit_run(Unit w, uint r, out vec4 lo, out vec4 hi) {
  lo = q8_values(w.q[2u * r]);
  hi = q8_values(w.q[2u * r + 1u]);
}
float run_scale(Unit w, uint r) { return w.d; }
uint run_column(uint part, uint r) { return part * 16u + r * 8u; }

#elif defined(WEIGHT_Q4_0) || defined(WEIGHT_Q5_0)
// Q4_0, 9 halfwords: f16 d, 16 bytes of 4-bit q: w = (q - 8) * d.
// Q5_0, 11 halfwords: f16 d, 32 high bits (bit j: value j), 16 bytes of low 4 bits: w = (q - 16) * d.
// Value j < 16 is the low nibble of byte j, value j + 16 its high nibble. A unit is 8 bytes:
// values 8p..8p+7 (run 0) and 16+8p..16+8p+7 (run 1) for part p.
#define UNIT_COLS 16u
#define BLOCK_UNITS 2u
#define UNIT_RUNS 2u
#define UNIT_SCALED
#if defined(WEIGHT_Q4_0)
#define BLOCK_HALFWORDS 9u
#define Q_OFFSET 8.0
#else
#define BLOCK_HALFWORDS 11u
#define Q_OFFSET 16.0
#endif
struct Unit {
  float d;
  uvec2 q;    // 8 quant bytes
  uint high;  // Q5_0: the high bits, shifted so that bit 0 is value 8p's
};
Unit load_unit(uint u) {
  const uint part = u & 1u;
  const uvec2 at = block_halfwords_at(u >> 1, BLOCK_HALFWORDS);
#if defined(WEIGHT_Q5_0)
  // After d, 10 halfwords a block: the high bits' word, then the quants' four.
  const uint word = at.y >> 1;
  const uint high = weight_u32[word] >> (part * 8u);
  return Unit(half_at(at.x), uvec2(weight_u32[word + 1u + part * 2u], weight_u32[word + 2u + part * 2u]), high);
#else
  return Unit(half_at(at.x), weight_words2[(at.y >> 2) + part], 0u);
#endif
}
void unit_run(Unit w, uint r, out vec4 lo, out vec4 hi) {
#if defined(WEIGHT_Q5_0)
  const uvec4 q_lo = nibbles(w.q.x, r * 4u) | (bits4(w.high, r * 16u) << 4);
  const uvec4 q_hi = nibbles(w.q.y, r * 4u) | (bits4(w.high, r * 16u + 4u) << 4);
  lo = small_uints(q_lo, Q_OFFSET);
  hi = small_uints(q_hi, Q_OFFSET);
#else
  lo = nibble_values(w.q.x, r * 4u, Q_OFFSET);
  hi = nibble_values(w.q.y, r * 4u, Q_OFFSET);
#endif
}
float run_scale(Unit w, uint r) { return w.d; }
uint run_column(uint part, uint r) { return part * 8u + r * 16u; }

#else  // WEIGHT_Q6_K
// 105 halfwords: 128 bytes of low 4 bits, 64 bytes of high 2 bits, int8 scales[16], f16 d (last).
// Each 128 values use 64 low bytes and 32 high bytes; quarter r of them (32 values) takes nibble
// r / 2 of low byte 32 * (r % 2) + l and bits 2r..2r+1 of high byte l: w = d * scale[j / 16] * (q - 32).
// A unit is 8 values of each quarter of one half: half n, l = l0..l0+7 for part 4n + l0 / 8; its
// runs are the quarters, each under one scale. Regrouped, a block's bytes but d start at a 16-byte
// boundary, so each of a unit's four reads is one 8-byte load: an aligned Q6_K LM head read 12%
// faster than one pieced from halfwords (docs/speed.md, session 43).
#define UNIT_COLS 32u
#define BLOCK_UNITS 8u
#define UNIT_RUNS 4u
#define UNIT_SCALED
struct Unit {
  uvec2 low01;  // low bytes for quarters 0 (low nibbles) and 2 (high nibbles)
  uvec2 low23;  // low bytes for quarters 1 and 3
  uvec2 high;   // high bytes, 2 bits per quarter
  vec4 scale;   // d * scale of each quarter's 8 values
};
Unit load_unit(uint u) {
  const uvec2 at = block_halfwords_at(u >> 3, 105u);
  const uint n = (u >> 2) & 1u;
  const uint l0 = (u & 3u) * 8u;
  // 8-byte words of the block after d: low bytes n * 64 + l0, high bytes 128 + n * 32 + l0.
  const uint low = (at.y >> 2) + n * 8u + l0 / 8u;
  const uint high = (at.y >> 2) + 16u + n * 4u + l0 / 8u;
  // Quarter r's scale is byte 8n + 2r + l0 / 16 of the scales (bytes 192..207): bytes l0 / 16 and
  // 2 + l0 / 16 of the half's two scale words.
  const uvec2 scale_words = weight_words2[(at.y >> 2) + 24u + n];
  const uint shift = (l0 / 16u) * 8u;
  const uvec4 sc = (uvec4(scale_words.xxyy) >> uvec4(shift, shift + 16u, shift, shift + 16u)) & 255u;
  precise vec4 scale = half_at(at.x) * small_uints(sc ^ 128u, 128.0);
  return Unit(weight_words2[low], weight_words2[low + 4u], weight_words2[high], scale);
}
// Quarter r's 6-bit values of four bytes, assembled a word at a time.
vec4 q6_values(uint low, uint high, uint r) {
  const uint q = ((low >> ((r >> 1) * 4u)) & 0x0F0F0F0Fu) | (((high >> (2u * r)) & 0x03030303u) << 4);
  return byte_values(q, 32.0);
}
void unit_run(Unit w, uint r, out vec4 lo, out vec4 hi) {
  const uvec2 low = (r & 1u) == 0u ? w.low01 : w.low23;
  lo = q6_values(low.x, w.high.x, r);
  hi = q6_values(low.y, w.high.y, r);
}
float run_scale(Unit w, uint r) { return w.scale[r]; }
uint run_column(uint part, uint r) { return (part >> 2) * 128u + r * 32u + (part & 3u) * 8u; }
#endif

// --- Q4_1 -----------------------------------------------------------------------------------

#elif defined(WEIGHT_Q4_1)
// 5 words: f16 d, f16 m, 16 bytes of 4-bit q: w = q * d + m. Units as Q4_0's.
#define UNIT_COLS 16u
#define BLOCK_UNITS 2u
#define UNIT_RUNS 2u
#define UNIT_SCALED
#define UNIT_MIN
layout(binding = WEIGHT_BINDING) readonly buffer WeightWords { uint weight_words[]; };
struct Unit {
  vec2 dm;
  uvec2 q;
};
Unit load_unit(uint u) {
  const uint block = (u >> 1) * 5u;
  const uint q = block + 1u + (u & 1u) * 2u;
  return Unit(unpackHalf2x16(weight_words[block]), uvec2(weight_words[q], weight_words[q + 1u]));
}
void unit_run(Unit w, uint r, out vec4 lo, out vec4 hi) {
  lo = nibble_values(w.q.x, r * 4u, 0.0);
  hi = nibble_values(w.q.y, r * 4u, 0.0);
}
float run_scale(Unit w, uint r) { return w.dm.x; }
float run_min(Unit w, uint r) { return -w.dm.y; }
uint run_column(uint part, uint r) { return part * 8u + r * 16u; }

// --- Q5_1 -----------------------------------------------------------------------------------

#elif defined(WEIGHT_Q5_1)
// 3 double words: f16 d, f16 m, 32 high bits; then 16 bytes of low 4 bits: w = q * d + m.
// Units as Q5_0's.
#define UNIT_COLS 16u
#define BLOCK_UNITS 2u
#define UNIT_RUNS 2u
#define UNIT_SCALED
#define UNIT_MIN
layout(binding = WEIGHT_BINDING) readonly buffer WeightWords2 { uvec2 weight_words2[]; };
struct Unit {
  vec2 dm;
  uvec2 q;
  uint high;  // shifted so that bit 0 is value 8p's
};
Unit load_unit(uint u) {
  const uint block = (u >> 1) * 3u;
  const uvec2 head = weight_words2[block];
  return Unit(unpackHalf2x16(head.x), weight_words2[block + 1u + (u & 1u)], head.y >> ((u & 1u) * 8u));
}
void unit_run(Unit w, uint r, out vec4 lo, out vec4 hi) {
  lo = small_uints(nibbles(w.q.x, r * 4u) | (bits4(w.high, r * 16u) << 4), 0.0);
  hi = small_uints(nibbles(w.q.y, r * 4u) | (bits4(w.high, r * 16u + 4u) << 4), 0.0);
}
float run_scale(Unit w, uint r) { return w.dm.x; }
float run_min(Unit w, uint r) { return -w.dm.y; }
uint run_column(uint part, uint r) { return part * 8u + r * 16u; }

// --- Q4_K and Q5_K --------------------------------------------------------------------------

#elif defined(WEIGHT_Q4_K) || defined(WEIGHT_Q5_K)
// 16 bytes of f16 d, f16 dmin and 12 bytes of packed 6-bit scales and mins; (Q5_K: 32 bytes of
// high bits;) 128 bytes of 4-bit quants. Each 64 values share 32 quant bytes: the first 32 values
// are their low nibbles (sub-block 2c), the next 32 their high nibbles (sub-block 2c + 1).
// w = d * scale[s] * q - dmin * min[s]. A unit is 16 quant bytes: values 64c + l0 .. + 15 and
// 64c + 32 + l0 .. + 15 for part 2c + l0 / 16, one aligned 16-byte load beside the block's first
// 16 bytes, which the block's 8 units share (one load for the invocations reading them together).
#define UNIT_COLS 32u
#define BLOCK_UNITS 8u
#define UNIT_RUNS 4u
#define UNIT_SCALED
#define UNIT_MIN
#if defined(WEIGHT_Q4_K)
#define BLOCK_WORDS4 9u
#define QS_WORD4 1u
#else
#define BLOCK_WORDS4 11u
#define QS_WORD4 3u
#endif
layout(binding = WEIGHT_BINDING) readonly buffer WeightWords4 { uvec4 weight_words4[]; };

struct Unit {
  uvec4 q;
  vec2 scale;  // d * scale of the low-nibble and the high-nibble sub-block
  vec2 min;    // dmin * min of each
#if defined(WEIGHT_Q5_K)
  uvec4 high;  // high bytes l0..l0+15: bit s is the fifth bit of sub-block s's value
  uint bit;    // 2c: the low-nibble sub-block
#endif
};
Unit load_unit(uint u) {
  const uint block = (u >> 3) * BLOCK_WORDS4;
  const uvec4 head = weight_words4[block];
  const vec2 dm = unpackHalf2x16(head.x);
  const uint c = (u & 7u) >> 1;
  // The 6-bit scales and mins of sub-blocks 2c and 2c + 1 (bytes 0-11 of the packed scales are
  // head.y, head.z, head.w). Sub-blocks 0-3 are the low 6 bits of bytes s (scale) and s + 4 (min);
  // sub-blocks 4-7 take their low 4 bits from the nibbles of byte s + 4 and their top 2 bits from
  // the spare top bits of bytes s - 4 (scale) and s (min). Both pairs are the bytes 2 (c % 2) and
  // 2 (c % 2) + 1 of a word, decoded side by side without a branch.
  const uint pair = (c & 1u) * 16u;
  const uvec2 shift = uvec2(pair, pair + 8u);
  const uvec2 low_scales = uvec2(head.y) >> shift, low_mins = uvec2(head.z) >> shift;
  const uvec2 nibble_pairs = uvec2(head.w) >> shift;
  const bool upper = c >= 2u;
  const uvec2 scales = upper ? (nibble_pairs & 15u) | ((low_scales >> 2) & 48u) : low_scales & 63u;
  const uvec2 mins = upper ? ((nibble_pairs >> 4) & 15u) | ((low_mins >> 2) & 48u) : low_mins & 63u;
  precise vec2 scale = dm.x * small_uints(scales, 0.0);
  precise vec2 min_value = dm.y * small_uints(mins, 0.0);
  Unit w;
  w.q = weight_words4[block + QS_WORD4 + (u & 7u)];
  w.scale = scale;
  w.min = min_value;
#if defined(WEIGHT_Q5_K)
  w.high = weight_words4[block + 1u + (u & 1u)];
  w.bit = 2u * c;
#endif
  return w;
}
// Runs 0 and 1 are the low nibbles of quant bytes 0-7 and 8-15, runs 2 and 3 their high nibbles.
void unit_run(Unit w, uint r, out vec4 lo, out vec4 hi) {
  const uint sub = r >> 1;
  const uvec2 q = (r & 1u) == 0u ? w.q.xy : w.q.zw;
#if defined(WEIGHT_Q5_K)
  const uvec2 high = (r & 1u) == 0u ? w.high.xy : w.high.zw;
  lo = small_uints(nibbles(q.x, sub * 4u) | (byte_bits(high.x, w.bit + sub) << 4), 0.0);
  hi = small_uints(nibbles(q.y, sub * 4u) | (byte_bits(high.y, w.bit + sub) << 4), 0.0);
#else
  lo = nibble_values(q.x, sub * 4u, 0.0);
  hi = nibble_values(q.y, sub * 4u, 0.0);
#endif
}
float run_scale(Unit w, uint r) { return w.scale[r >> 1]; }
float run_min(Unit w, uint r) { return w.min[r >> 1]; }
uint run_column(uint part, uint r) { return (part >> 1) * 64u + (part & 1u) * 16u + (r >> 1) * 32u + (r & 1u) * 8u; }

#else
#error "matvec_units.glsl: define one WEIGHT_* type"
#endif

// --- values ---------------------------------------------------------------------------------

// Run r's 8 weights as values, for kernels that stage weights rather than multiply each run by X
// (matmul_coopmat.comp): quantized runs scaled (and their min taken off) here, per weight.
void unit_run_values(Unit w, uint r, out vec4 lo, out vec4 hi) {
  unit_run(w, r, lo, hi);
#if defined(UNIT_MIN)
  precise vec4 scaled_lo = run_scale(w, r) * lo - run_min(w, r);
  precise vec4 scaled_hi = run_scale(w, r) * hi - run_min(w, r);
  lo = scaled_lo;
  hi = scaled_hi;
#elif defined(UNIT_SCALED)
  precise vec4 scaled_lo = run_scale(w, r) * lo;
  precise vec4 scaled_hi = run_scale(w, r) * hi;
  lo = scaled_lo;
  hi = scaled_hi;
#endif
}
