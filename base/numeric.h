#pragma once
// Host-side float conversions: f32 to and from the 16-bit formats the kernels read (f16 through
// Imath's half, round to nearest even; bf16 is the top half of an f32), and f32 for printing.
#include <bit>
#include <charconv>
#include <cstdint>

#include <Imath/half.h>

namespace qvk {

inline uint16_t FloatToHalf(float value) {
  return Imath::half(value).bits();
}

inline float HalfToFloat(uint16_t bits) {
  Imath::half h;
  h.setBits(bits);
  return static_cast<float>(h);
}

// Round to nearest even, as torch's .to(torch.bfloat16) does; NaN stays NaN.
inline uint16_t FloatToBf16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

inline float Bf16ToFloat(uint16_t bits) {
  return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

// The double that prints as the float's shortest decimal (0.7f as 0.7, 1e-6f as 1e-06, not
// 9.99999997e-07): files and output stay readable, and reading it back as a float gives the
// same float.
inline double ShortestDouble(float value) {
  char text[32];
  const std::to_chars_result printed = std::to_chars(text, text + sizeof text, value);
  double shortest = value;
  std::from_chars(text, printed.ptr, shortest);  // locale-independent, unlike strtod
  return shortest;
}

}  // namespace qvk
