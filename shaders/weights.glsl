// Weight element loads for the matrix kernels and the embedding gather; the variant's define
// picks the storage type. Define WEIGHT_BINDING before including. Values come out as f32.
#if defined(WEIGHT_F32)
layout(binding = WEIGHT_BINDING) readonly buffer Weights { float weights[]; };
float load_weight(uint i) { return weights[i]; }
#elif defined(WEIGHT_F16)
layout(binding = WEIGHT_BINDING) readonly buffer Weights { float16_t weights[]; };
float load_weight(uint i) { return float(weights[i]); }
#elif defined(WEIGHT_BF16)
layout(binding = WEIGHT_BINDING) readonly buffer Weights { uint16_t weights[]; };
// bf16 is the top half of an f32.
float load_weight(uint i) { return uintBitsToFloat(uint(weights[i]) << 16); }
#elif defined(WEIGHT_Q8_0) || defined(WEIGHT_Q4_0) || defined(WEIGHT_Q4_1) || defined(WEIGHT_Q5_0) || \
    defined(WEIGHT_Q5_1) || defined(WEIGHT_Q4_K) || defined(WEIGHT_Q5_K) || defined(WEIGHT_Q6_K)
#include "quant.glsl"
#else
#error "define WEIGHT_F32, WEIGHT_F16, WEIGHT_BF16 or one of the WEIGHT_Q* block types"
#endif
