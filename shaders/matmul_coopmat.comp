#version 450
// Matrix x matrix on cooperative matrices (tensor cores), the same contract as matmul.comp:
// Y[t, r] = sum_k W[r, k] X[t, k] (+ bias) (+ residual). A workgroup of four 32-wide subgroups
// computes 64 tokens x 64 features; each subgroup a 32 x 32 quarter as 2 x 2 16x16 f32
// accumulators. Every 32 inner elements, the workgroup stages W (dequantized by weights.glsl,
// rounded to f16) and X (split into two f16 parts, below) in shared memory; the subgroups then
// multiply 16x16x16 f16 fragments. ops::MatMul uses it only on devices with
// DeviceInfo::coopmat_f16, which checks everything assumed here (the 16x16x16 f16*f16+f32
// subgroup shape, 32-wide subgroups, the Vulkan memory model).
//
// GL_NV_cooperative_matrix rather than GL_KHR_cooperative_matrix: the glslang this project
// builds with (shaderc 2023.2, glslang 11.13) compiles only the NV extension. Its SPIR-V (1.3,
// SPV_NV_cooperative_matrix + SPV_KHR_vulkan_memory_model) is valid for Vulkan 1.1.
//
// Precision: X = hi + lo with hi = f16(X) and lo = f16(X - hi), both multiplied by W, so X
// reaches the products to about 2^-22 relative, as in an f32 kernel; a plain f16 X (2^-11) moved
// the fixture model's logits by 2e-3, past the 1e-4 at which prefill must agree with decode.
// W is exact in f16 for F16 and BF16 weights; F32 and dequantized block weights are rounded to
// f16 (2^-11 relative). Products and sums are f32 in the matrix units.
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

#define WEIGHT_BINDING 0
#include "weights.glsl"

layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 2) buffer Y { float y[]; };
layout(binding = 3) readonly buffer Bias { float bias[]; };
layout(binding = 4) readonly buffer Residual { float residual[]; };

layout(push_constant) uniform Push { MatMulPush p; };

#define TILE QVK_COOPMAT_TILE  // tokens and features per workgroup
#define STEP 32u               // inner elements staged at a time
#define FRAG 16u               // fragment edge: the 16x16x16 shape
#define F16_MAX 65504.0

// Shared memory is uvec4s (8 halves or 4 floats each), as in NVIDIA's cooperative-matrix
// samples: fragment loads and stores need 16-byte aligned rows, and a uvec4 array's elements are
// 16-byte aligned wherever the driver places it. Offsets and strides below are in uvec4s.
// A staged row is STEP halves plus 8 of padding: 80 bytes, so the eight rows a fragment load
// reads at once start in different banks.
#define STAGE_ROW (STEP / 8u + 1u)
#define STAGE_SIZE (TILE * STAGE_ROW)
// The accumulators, stored once at the end, reuse the staging memory: 64 floats plus 4 a row.
#define OUT_ROW (TILE / 4u + 1u)
#define X_HI 0u
#define X_LO STAGE_SIZE
#define W_STAGE (2u * STAGE_SIZE)
shared uvec4 tile_memory[max(3u * STAGE_SIZE, TILE * OUT_ROW)];

#define HalfFrag fcoopmatNV<16, gl_ScopeSubgroup, FRAG, FRAG>
#define AccFrag fcoopmatNV<32, gl_ScopeSubgroup, FRAG, FRAG>

float weight_or_zero(uint row, uint k) {
  if (row >= p.rows || k >= p.cols) return 0.0;
  return load_weight(row * p.cols + k);
}

float x_or_zero(uint token, uint k) {
  if (token >= p.tokens || k >= p.cols) return 0.0;
  return x[token * p.x_stride + k];
}

uint pack_halves(vec2 v) { return packFloat2x16(f16vec2(v)); }

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint row0 = gl_WorkGroupID.x * TILE;    // first output feature of the tile
  const uint token0 = gl_WorkGroupID.y * TILE;  // first token of the tile
  // Subgroup s owns tokens 32 * (s / 2) and features 32 * (s % 2) onward, in the tile.
  const uint sub_token = (gl_SubgroupID / 2u) * 2u * FRAG;
  const uint sub_row = (gl_SubgroupID % 2u) * 2u * FRAG;

  AccFrag acc[2][2];
  [[unroll]] for (uint i = 0; i < 2; ++i) {
    [[unroll]] for (uint j = 0; j < 2; ++j) acc[i][j] = AccFrag(0.0);
  }

  for (uint k0 = 0; k0 < p.cols; k0 += STEP) {
    // Stage: each item is 8 consecutive inner elements of one tile row (one uvec4); the four
    // items of a row go to neighbouring invocations, so a block's bytes are read together.
    for (uint item = tid; item < TILE * STEP / 8u; item += WG) {
      const uint r = item / (STEP / 8u);
      const uint k = k0 + (item % (STEP / 8u)) * 8u;
      const uint at = r * STAGE_ROW + item % (STEP / 8u);
      uvec4 w_packed, hi_packed, lo_packed;
      [[unroll]] for (uint c = 0; c < 4; ++c) {
        const vec2 w = vec2(weight_or_zero(row0 + r, k + 2u * c), weight_or_zero(row0 + r, k + 2u * c + 1u));
        const vec2 xv = vec2(x_or_zero(token0 + r, k + 2u * c), x_or_zero(token0 + r, k + 2u * c + 1u));
        // hi clamped to stay finite: X up to twice f16's range still arrives whole as hi + lo.
        const vec2 hi = vec2(f16vec2(clamp(xv, -F16_MAX, F16_MAX)));
        w_packed[c] = pack_halves(w);
        hi_packed[c] = pack_halves(hi);
        lo_packed[c] = pack_halves(xv - hi);
      }
      tile_memory[W_STAGE + at] = w_packed;
      tile_memory[X_HI + at] = hi_packed;
      tile_memory[X_LO + at] = lo_packed;
    }
    barrier();

    [[unroll]] for (uint kk = 0; kk < STEP; kk += FRAG) {
      // A: X rows (tokens) row-major; B = W^T: column n is W row n, so W's rows read column-major.
      HalfFrag x_hi[2], x_lo[2], w[2];
      [[unroll]] for (uint i = 0; i < 2; ++i) {
        const uint x_at = (sub_token + i * FRAG) * STAGE_ROW + kk / 8u;
        coopMatLoadNV(x_hi[i], tile_memory, X_HI + x_at, STAGE_ROW, false);
        coopMatLoadNV(x_lo[i], tile_memory, X_LO + x_at, STAGE_ROW, false);
        coopMatLoadNV(w[i], tile_memory, W_STAGE + (sub_row + i * FRAG) * STAGE_ROW + kk / 8u, STAGE_ROW, true);
      }
      [[unroll]] for (uint i = 0; i < 2; ++i) {
        [[unroll]] for (uint j = 0; j < 2; ++j) {
          acc[i][j] = coopMatMulAddNV(x_lo[i], w[j], acc[i][j]);
          acc[i][j] = coopMatMulAddNV(x_hi[i], w[j], acc[i][j]);
        }
      }
    }
    barrier();
  }

  // Epilogue through shared memory: bias, residual and the tile's ragged edges per element.
  [[unroll]] for (uint i = 0; i < 2; ++i) {
    [[unroll]] for (uint j = 0; j < 2; ++j) {
      const uint at = (sub_token + i * FRAG) * OUT_ROW + (sub_row + j * FRAG) / 4u;
      coopMatStoreNV(acc[i][j], tile_memory, at, OUT_ROW, false);
    }
  }
  barrier();
  for (uint e = tid; e < TILE * TILE; e += WG) {
    const uint t = e / TILE;
    const uint r = e % TILE;
    const uint token = token0 + t;
    const uint row = row0 + r;
    if (token >= p.tokens || row >= p.rows) continue;
    const uint out_col = p.col_offset + row;
    float v = uintBitsToFloat(tile_memory[t * OUT_ROW + r / 4u][r % 4u]);
    if ((p.flags & QVK_FLAG_BIAS) != 0) v += bias[out_col];
    const uint out_index = token * p.y_stride + out_col;
    if ((p.flags & QVK_FLAG_RESIDUAL) != 0) v += residual[out_index];
    y[out_index] = v;
  }
}
