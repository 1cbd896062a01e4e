// f32 values packed as f16 halves, 8 to a uvec4 (a run), for the kernels that hand f16 operands to
// matrix units (dequantize_f16.comp, and coopmat.glsl's kernels).
//
// Rounded to nearest by the bits, not left to the conversion: Vulkan lets f32 -> f16 conversions
// round toward zero, a full f16 ulp (2^-10) where to nearest is half of one. Half an ulp (bit 12)
// is added to the f32 bits and the 13 bits f16 lacks are cut, so ties go away from zero and the
// conversion that follows is exact wherever the result is a normal f16 (below 2^-14 it rounds as
// the device converts, within 2^-24). Clamped to f16's range first so that the result is finite.
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require

#define F16_MAX 65504.0

// A value's leading 11 significant bits, cut (toward zero) or rounded to nearest.
vec4 f16_part(vec4 v) { return uintBitsToFloat(floatBitsToUint(clamp(v, -F16_MAX, F16_MAX)) & 0xFFFFE000u); }
vec4 f16_nearest(vec4 v) {
  return uintBitsToFloat((floatBitsToUint(clamp(v, -F16_MAX, F16_MAX)) + 0x1000u) & 0xFFFFE000u);
}

uint pack_halves(vec2 v) { return packFloat2x16(f16vec2(v)); }

// A run of 8 values (first and second four) as 8 halves, as they are (exact where they fit f16).
uvec4 pack_run(vec4 first, vec4 second) {
  return uvec4(pack_halves(first.xy), pack_halves(first.zw), pack_halves(second.xy), pack_halves(second.zw));
}

// A run of 8 values rounded to the nearest f16 (2^-11 relative).
uvec4 nearest_run(vec4 first, vec4 second) { return pack_run(f16_nearest(first), f16_nearest(second)); }
