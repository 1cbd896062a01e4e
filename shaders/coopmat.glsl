// What the cooperative-matrix kernels (matmul_coopmat.comp, attention_coopmat.comp) share: the
// 16x16x16 f16*f16+f32 fragments they multiply, and the f16 hi/lo split that lets an f32 operand
// reach the matrix units to about 2^-22 relative.
//
// GL_NV_cooperative_matrix rather than GL_KHR_cooperative_matrix: the glslang this project
// builds with (shaderc 2023.2, glslang 11.13) compiles only the NV extension. Its SPIR-V (1.3,
// SPV_NV_cooperative_matrix + SPV_KHR_vulkan_memory_model) is valid for Vulkan 1.1.
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#include "f16.glsl"  // f16_part, pack_run, nearest_run

#define FRAG 16u  // fragment edge: the 16x16x16 shape
#define HalfFrag fcoopmatNV<16, gl_ScopeSubgroup, FRAG, FRAG>
#define AccFrag fcoopmatNV<32, gl_ScopeSubgroup, FRAG, FRAG>

// hi = f16_part(v) and lo = v - hi as 8 halves each, for a run of 8 values. hi is cut by a mask:
// a conversion to f16 and back did not survive NVIDIA's compiler (on the H200 it left lo zero, and
// the F16 cases of matmul_coopmat_test erred exactly as with a plain f16 X). Clamped, hi stays
// finite: values up to twice f16's range still arrive whole as hi + lo. Where |v| < 2^-3, lo is an
// f16 subnormal, exact to 2^-24 absolute: an error of at most 2^-25 times the other operand per
// product, far below the relative 2^-22 the split keeps elsewhere (the matrix units take subnormal
// f16 inputs as they are).
void split_run(vec4 first, vec4 second, out uvec4 hi, out uvec4 lo) {
  const vec4 hi_first = f16_part(first);
  const vec4 hi_second = f16_part(second);
  hi = pack_run(hi_first, hi_second);
  lo = pack_run(first - hi_first, second - hi_second);
}

