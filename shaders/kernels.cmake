# The kernel registry: every compute kernel, one qwenvk_kernel() call each. From this list the
# build compiles the SPIR-V variants and generates the KernelId enum and the kernel table
# (generated/kernel_registry.h and kernel_table.inc, read by gpu/kernels.*): a new kernel is its
# .comp file, its push-constant struct in push_constants.h, one call here and its op in gpu/ops.
#
# qwenvk_kernel(OP Name SOURCE file.comp        the op; kernels are KernelId::Name[Type]
#               [TYPES F16 Q4_0 ...]             one variant per weight type, compiled with -DWEIGHT_<TYPE>
#               [NAME spirv_name]                default: the op in lower case (+ _type)
#               BINDINGS a b c ...               storage buffers at bindings 0.., in the shader's order
#               WRITES b ...                     the bindings it writes (barriers follow these)
#               PUSH StructName                  its push constants (shaders/push_constants.h)
#               LOCAL_SIZE n                     workgroup size: specialization constant 0
#               [SPEC NAME=value ...]            more specialization constants, ids 1, 2, ... in order
#               [DEFINES A=1 ...]                more -D defines for glslc
#               [TARGET vulkan1.1]               SPIR-V target environment
#               [UNOPTIMIZED]                    compiled without glslc -O (see where it is used)
#               [FEATURES storage_8bit ...])     device features it needs (KernelFeature in gpu/kernels.h);
#                                                 block-quantized TYPES add storage_8bit themselves

# DType order (base/dtype.h).
set(QWENVK_WEIGHT_TYPES F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K)

# Matrix x vector: decode's one token (ONE_TOKEN: registers for one token's sums) without the
# RMSNorm folded in (NO_NORM: o and down, which on an H200 then take 56 registers an invocation,
# not 64, and run 5-7% faster) and with it (matvec_norm), and 2 to QVK_MATVEC_MAX_TOKENS tokens
# (matvec_tokens).
qwenvk_kernel(OP MatVec SOURCE matvec.comp TYPES ${QWENVK_WEIGHT_TYPES} DEFINES ONE_TOKEN NO_NORM
              BINDINGS w x y bias residual norm_weight WRITES y PUSH MatVecPush LOCAL_SIZE 128)
qwenvk_kernel(OP MatVecNorm NAME matvec_norm SOURCE matvec.comp TYPES ${QWENVK_WEIGHT_TYPES} DEFINES ONE_TOKEN NORMED_OUT
              BINDINGS w x y bias residual norm_weight normed WRITES y normed PUSH MatVecPush LOCAL_SIZE 128)
# One token's residual product (o, down) that also stores its output times the next norm's weight
# (`scaled`): the next product's input but for 1 / rms, which that product (matvec_prescaled and
# matvec_rope_prescaled, x bound as norm_weight) sums once a workgroup, so that decode's large
# K-quant gate|up needs no rmsnorm dispatch and its large K-quant q|k|v no norm work in its row
# groups. Variants of their own: the code costs the other products 1-2% unused.
qwenvk_kernel(OP MatVecScaledOut NAME matvec_scaled_out SOURCE matvec.comp TYPES ${QWENVK_WEIGHT_TYPES}
              DEFINES ONE_TOKEN NO_NORM SCALED_OUT
              BINDINGS w x y bias residual norm_weight scaled WRITES y scaled PUSH MatVecPush LOCAL_SIZE 128)
qwenvk_kernel(OP MatVecPrescaled NAME matvec_prescaled SOURCE matvec.comp TYPES ${QWENVK_WEIGHT_TYPES}
              DEFINES ONE_TOKEN NO_NORM PRESCALED
              BINDINGS w x y bias residual norm_weight WRITES y PUSH MatVecPush LOCAL_SIZE 128)
qwenvk_kernel(OP MatVecTokens NAME matvec_tokens SOURCE matvec.comp TYPES ${QWENVK_WEIGHT_TYPES}
              BINDINGS w x y bias residual norm_weight WRITES y PUSH MatVecPush LOCAL_SIZE 128)
# Decode's fused q|k|v projection with RoPE and the KV cache store folded into its epilogue; one
# token, and 2 to QVK_MATVEC_MAX_TOKENS.
qwenvk_kernel(OP MatVecRope NAME matvec_rope SOURCE matvec.comp TYPES ${QWENVK_WEIGHT_TYPES} DEFINES ROPE ONE_TOKEN
              BINDINGS w x y bias residual norm_weight positions inv_freq k_cache v_cache WRITES y k_cache v_cache
              PUSH MatVecPush LOCAL_SIZE 128)
qwenvk_kernel(OP MatVecRopePrescaled NAME matvec_rope_prescaled SOURCE matvec.comp TYPES ${QWENVK_WEIGHT_TYPES}
              DEFINES ROPE ONE_TOKEN PRESCALED
              BINDINGS w x y bias residual norm_weight positions inv_freq k_cache v_cache WRITES y k_cache v_cache
              PUSH MatVecPush LOCAL_SIZE 128)
qwenvk_kernel(OP MatVecRopeTokens NAME matvec_rope_tokens SOURCE matvec.comp TYPES ${QWENVK_WEIGHT_TYPES}
              DEFINES ROPE
              BINDINGS w x y bias residual norm_weight positions inv_freq k_cache v_cache WRITES y k_cache v_cache
              PUSH MatVecPush LOCAL_SIZE 128)
qwenvk_kernel(OP MatMul SOURCE matmul.comp TYPES ${QWENVK_WEIGHT_TYPES}
              BINDINGS w x y bias residual WRITES y PUSH MatMulPush LOCAL_SIZE 256)
# Q8_0, Q4_0, Q5_0 and Q6_K weights regrouped in place once they are uploaded (regroup.glsl).
qwenvk_kernel(OP RegroupBlocks NAME regroup_blocks SOURCE regroup_blocks.comp
              BINDINGS w WRITES w PUSH RegroupPush LOCAL_SIZE 64)
# A block-quantized (or F32) weight's rows rounded to f16 once, for the GEMM's *Rounded variants.
qwenvk_kernel(OP DequantizeF16 NAME dequantize_f16 SOURCE dequantize_f16.comp
              TYPES F32 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K
              BINDINGS w y WRITES y PUSH DequantizeF16Push LOCAL_SIZE 256 FEATURES float16)
# X's rows rounded to f16 once, for the GEMM's *Rounded variants (X_HALF there).
qwenvk_kernel(OP RoundF16 NAME round_f16 SOURCE round_f16.comp
              BINDINGS x y WRITES y PUSH RoundF16Push LOCAL_SIZE 256 FEATURES float16)
# The same into X itself, row by row: the MLP's m for down (no room of its own).
qwenvk_kernel(OP RoundF16InPlace NAME round_f16_in_place SOURCE round_f16.comp DEFINES IN_PLACE
              BINDINGS x WRITES x PUSH RoundF16Push LOCAL_SIZE 256 FEATURES float16)
# Prefill on matrix units: f16 operands, f32 sums (matmul_coopmat.comp), in tiles of 64 tokens by
# 128 features, or by 64 for products with few outputs (ops::ChooseCoopmatTile). Its SPIR-V (1.3,
# with SPV_NV_cooperative_matrix and SPV_KHR_vulkan_memory_model) suits the same Vulkan 1.1 target.
# UNOPTIMIZED: bookworm's glslc -O (spirv-opt) crashes on its accumulator arithmetic; the driver
# compiles the SPIR-V to machine code with its own optimizer either way.
# Its variants, MatMulCoopmat[Rounded|Short][Narrow][SwiGlu] (ops::MatMul picks one per product):
#   the sums: the weight type's own (promoted where W is exact in f16); *Rounded, rows dequantized
#     to f16 first and multiplied as rounded weights, without promotion and with X rounded to f16
#     as one part rather than split into hi + lo (the rounding of W already sets their precision);
#     *Short, F16 files' products whose sums are short (a row, or a split's part of one): no
#     promotion, X still hi + lo (ops::CoopmatSumsUnpromoted);
#   the SwiGLU in the epilogue (prefill's gate|up): a variant of its own, not a flag, because the
#     flag's row arithmetic in every product made quantized prefill 5-20% slower on the H200
#     (docs/speed.md, session 11);
#   wide (128-feature) or narrow (64-feature) tiles of 64 tokens, or tall ones (128 x 128).
foreach(sums IN ITEMS Stored Rounded Short)
  if(sums STREQUAL "Stored")
    set(sums_op "")
    set(sums_types ${QWENVK_WEIGHT_TYPES})
    set(sums_define "")
  else()
    set(sums_op ${sums})
    set(sums_types F16)
    if(sums STREQUAL "Rounded")
      set(sums_define ROUNDED)
    else()
      set(sums_define SHORT_SUMS)
    endif()
  endif()
  # Tall tiles (128 tokens by 128 features) for rounded weights only: X in two parts would need
  # 60 KiB of stage buffers, past the 48 KiB NVIDIA's Vulkan driver gives a workgroup.
  set(tiles Wide Narrow)
  if(sums STREQUAL "Rounded")
    list(APPEND tiles Tall)
  endif()
  foreach(swiglu IN ITEMS "" SwiGlu)
    foreach(tile IN ITEMS ${tiles})
      # MatMulCoopmatRoundedNarrowSwiGlu, named matmul_coopmat_rounded_narrow_swiglu
      set(op MatMulCoopmat${sums_op})
      set(name matmul_coopmat)
      if(sums_op)
        string(TOLOWER "_${sums_op}" part)
        string(APPEND name ${part})
      endif()
      set(tile_define TILE_ROWS=QVK_COOPMAT_WIDE_ROWS)
      if(tile STREQUAL "Narrow")
        string(APPEND op Narrow)
        string(APPEND name _narrow)
        set(tile_define TILE_ROWS=QVK_COOPMAT_NARROW_ROWS)
      elseif(tile STREQUAL "Tall")
        string(APPEND op Tall)
        string(APPEND name _tall)
        list(APPEND tile_define TILE_TOKENS=QVK_COOPMAT_TALL_TOKENS)
      endif()
      set(swiglu_define "")
      if(swiglu)
        string(APPEND op SwiGlu)
        string(APPEND name _swiglu)
        set(swiglu_define SWIGLU)
      endif()
      qwenvk_kernel(OP ${op} NAME ${name} SOURCE matmul_coopmat.comp TYPES ${sums_types}
                    DEFINES ${tile_define} ${sums_define} ${swiglu_define}
                    BINDINGS w x y bias residual WRITES y PUSH MatMulPush LOCAL_SIZE 256 FEATURES coopmat_nv
                    UNOPTIMIZED)
    endforeach()
  endforeach()
endforeach()
qwenvk_kernel(OP Embed SOURCE embed.comp TYPES ${QWENVK_WEIGHT_TYPES}
              BINDINGS table ids y WRITES y PUSH EmbedPush LOCAL_SIZE 256)
qwenvk_kernel(OP RmsNorm SOURCE rmsnorm.comp
              BINDINGS x weight y WRITES y PUSH RmsNormPush LOCAL_SIZE 256)
# The same, Y rounded to nearest f16: the input of a product of rounded weights (X_HALF there).
qwenvk_kernel(OP RmsNormF16 NAME rmsnorm_f16 SOURCE rmsnorm.comp DEFINES Y_HALF
              BINDINGS x weight y WRITES y PUSH RmsNormPush LOCAL_SIZE 256 FEATURES float16)
# Y = X * weight, no 1 / rms: a prescaled product's input (matvec_prescaled) where no product
# before it stored one, e.g. the first layer a device runs.
qwenvk_kernel(OP ScaleByWeight NAME scale_by_weight SOURCE rmsnorm.comp DEFINES SCALE_ONLY
              BINDINGS x weight y WRITES y PUSH RmsNormPush LOCAL_SIZE 256)
# Qwen3's q and k RMSNorm per head, then RoPE and the cache stores, in one dispatch.
qwenvk_kernel(OP HeadNormRope NAME head_norm_rope SOURCE head_norm_rope.comp
              BINDINGS qkv positions inv_freq k_cache v_cache weight WRITES qkv k_cache v_cache
              PUSH HeadNormRopePush LOCAL_SIZE 64)
# Mixture of experts: the router's choice, the chosen experts' products, their weighted sum.
qwenvk_kernel(OP MoeRoute NAME moe_route SOURCE moe_route.comp
              BINDINGS logits ids weights WRITES ids weights PUSH MoeRoutePush LOCAL_SIZE 32)
# Decode's expert products: matvec with each dispatch row's weight rows those of the experts the
# router chose (ExpertsPush), the SwiGLU, or the router weights, the sum over experts and a shared
# expert's gated output, folded.
qwenvk_kernel(OP MatVecExperts NAME matvec_experts SOURCE matvec.comp TYPES ${QWENVK_WEIGHT_TYPES}
              DEFINES EXPERTS ONE_TOKEN
              BINDINGS w x y bias residual norm_weight ids expert_weights shared_out shared_gate WRITES y
              PUSH MatVecExpertsPush LOCAL_SIZE 128)
# Decode's router product (one token, its norm folded in or not, as matvec_norm) whose last
# workgroup to finish makes the router's choice (moe_choice.glsl) and stores it for the expert
# products: no route dispatch, and no choice in each workgroup of the experts' gate|up.
qwenvk_kernel(OP MatVecRoute NAME matvec_route SOURCE matvec.comp TYPES ${QWENVK_WEIGHT_TYPES}
              DEFINES ONE_TOKEN NORMED_OUT ROUTE
              BINDINGS w x y bias residual norm_weight normed ids expert_weights route_counter
              WRITES y normed ids expert_weights route_counter PUSH MatVecRoutePush LOCAL_SIZE 128)
# Prefill's expert products: the pairs grouped by expert, then each expert's rows times its pairs'
# X rows as one GEMM (tiled, or on matrix units in 64 x 128 tiles), one dispatch for all experts.
qwenvk_kernel(OP MoeGroup NAME moe_group SOURCE moe_group.comp
              BINDINGS ids offsets sorted WRITES offsets sorted PUSH MoeGroupPush LOCAL_SIZE 256)
qwenvk_kernel(OP MatMulExperts NAME matmul_experts SOURCE matmul.comp TYPES ${QWENVK_WEIGHT_TYPES} DEFINES EXPERTS
              BINDINGS w x y bias residual sorted offsets WRITES y PUSH MatMulExpertsPush LOCAL_SIZE 256)
qwenvk_kernel(OP MatMulCoopmatExperts NAME matmul_coopmat_experts SOURCE matmul_coopmat.comp TYPES ${QWENVK_WEIGHT_TYPES}
              DEFINES EXPERTS TILE_ROWS=QVK_COOPMAT_WIDE_ROWS
              BINDINGS w x y bias residual sorted offsets WRITES y PUSH MatMulExpertsPush LOCAL_SIZE 256
              FEATURES coopmat_nv UNOPTIMIZED)
qwenvk_kernel(OP MatMulCoopmatExpertsSwiGlu NAME matmul_coopmat_experts_swiglu SOURCE matmul_coopmat.comp
              TYPES ${QWENVK_WEIGHT_TYPES} DEFINES EXPERTS TILE_ROWS=QVK_COOPMAT_WIDE_ROWS SWIGLU
              BINDINGS w x y bias residual sorted offsets WRITES y PUSH MatMulExpertsPush LOCAL_SIZE 256
              FEATURES coopmat_nv UNOPTIMIZED)
qwenvk_kernel(OP MoeCombine NAME moe_combine SOURCE moe_combine.comp
              BINDINGS x weights expert_out shared_out shared_gate WRITES x PUSH MoeCombinePush LOCAL_SIZE 256)
qwenvk_kernel(OP Rope SOURCE rope.comp
              BINDINGS qkv positions inv_freq k_cache v_cache WRITES qkv k_cache v_cache PUSH RopePush LOCAL_SIZE 64)
# The splits of a matmul_coopmat split along K, summed in order, with its bias and residual.
qwenvk_kernel(OP MatMulSplitSum NAME matmul_split_sum SOURCE matmul_split_sum.comp
              BINDINGS partials y bias residual WRITES y PUSH MatMulSplitSumPush LOCAL_SIZE 256)
qwenvk_kernel(OP SwiGlu SOURCE swiglu.comp
              BINDINGS gate_up y WRITES y PUSH SwiGluPush LOCAL_SIZE 256)
qwenvk_kernel(OP Attention SOURCE attention.comp
              BINDINGS q positions k_cache v_cache out probs partials WRITES out probs partials
              PUSH AttentionPush LOCAL_SIZE 128)
# Blocks of 8 query rows on 256 invocations: a decode step's q heads of one KV group (at most 8
# on every Qwen model), each row with a subgroup's 32 lanes where a 16-row block of 128 gave it 8,
# so that each lane scores a quarter of the keys; and any block of head_dim > 128.
# Both merge their splits in the last split of each block where asked (QVK_FLAG_COMBINE_IN_SPLITS),
# counting them on split_counters.
qwenvk_kernel(OP AttentionNarrow NAME attention_narrow SOURCE attention.comp
              DEFINES MAX_ROWS=8 MAX_TILE_KEYS=64 TILE_QUADS=1024 SPLIT_COUNTERS
              BINDINGS q positions k_cache v_cache out probs partials split_counters
              WRITES out probs partials split_counters PUSH AttentionPush LOCAL_SIZE 256)
# The same for a decode step of Qwen3, with its head norm and RoPE (and the K/V cache stores) done
# as it stages the heads: no head_norm_rope dispatch before it.
qwenvk_kernel(OP AttentionNarrowNorm NAME attention_narrow_norm SOURCE attention.comp
              DEFINES MAX_ROWS=8 MAX_TILE_KEYS=64 TILE_QUADS=1024 QK_NORM SPLIT_COUNTERS
              BINDINGS q positions k_cache v_cache out probs partials inv_freq norm_weight split_counters
              WRITES k_cache v_cache out probs partials split_counters PUSH AttentionNormPush LOCAL_SIZE 256)
qwenvk_kernel(OP AttentionWide NAME attention_wide SOURCE attention.comp DEFINES MAX_ROWS=32 MAX_TILE_KEYS=48 TILE_QUADS=768
              BINDINGS q positions k_cache v_cache out probs partials WRITES out probs partials
              PUSH AttentionPush LOCAL_SIZE 128)
qwenvk_kernel(OP AttentionWideD128 NAME attention_wide_d128 SOURCE attention.comp
              DEFINES MAX_ROWS=32 MAX_TILE_KEYS=24 TILE_QUADS=768 Q_QUADS=1024
              BINDINGS q positions k_cache v_cache out probs partials WRITES out probs partials
              PUSH AttentionPush LOCAL_SIZE 128)
# Prefill attention on matrix units (blocks of 64 query rows, 32-key tiles), one variant per
# head_dim it serves; no probabilities (ops binds O in their place).
qwenvk_kernel(OP AttentionCoopmatD64 NAME attention_coopmat_d64 SOURCE attention_coopmat.comp DEFINES HEAD_DIM=64u
              BINDINGS q positions k_cache v_cache out probs partials WRITES out partials
              PUSH AttentionPush LOCAL_SIZE 128 FEATURES coopmat_nv UNOPTIMIZED)
qwenvk_kernel(OP AttentionCoopmatD128 NAME attention_coopmat_d128 SOURCE attention_coopmat.comp DEFINES HEAD_DIM=128u
              BINDINGS q positions k_cache v_cache out probs partials WRITES out partials
              PUSH AttentionPush LOCAL_SIZE 128 FEATURES coopmat_nv UNOPTIMIZED)
# Merges the key splits' partial (max, sum, output) of the attention kernel into O, and makes
# their scores probabilities (or writes each row's max and sum beside the scores).
qwenvk_kernel(OP AttentionCombine NAME attention_combine SOURCE attention_combine.comp
              BINDINGS positions partials out probs WRITES out probs PUSH AttentionPush LOCAL_SIZE 64)
# Attention maps from the attention kernel's probabilities: one head copied, or the max or mean
# over heads and square cells; combines with its own output across a prefill's chunks.
qwenvk_kernel(OP AttentionReduce NAME attention_reduce SOURCE attention_reduce.comp
              BINDINGS probs out WRITES out PUSH AttentionReducePush LOCAL_SIZE 256)
# Live attention rows: a decode step's row reduced to each view the viewer chose, from the scores
# every layer kept (views from a buffer, keys from positions), so only those rows reach host memory.
qwenvk_kernel(OP AttentionLive NAME attention_live SOURCE attention_live.comp
              BINDINGS scores positions views out WRITES out PUSH AttentionLivePush LOCAL_SIZE 256)
qwenvk_kernel(OP TopKChunks NAME topk_chunks SOURCE topk.comp DEFINES TOPK_CHUNKS
              BINDINGS values out_values out_indices WRITES out_values out_indices PUSH TopKPush LOCAL_SIZE 256)
# Candidate indices are marked as taken while merging, so that binding is written too.
qwenvk_kernel(OP TopKMerge NAME topk_merge SOURCE topk.comp DEFINES TOPK_MERGE
              BINDINGS values indices out_values out_indices WRITES indices out_values out_indices
              PUSH TopKPush LOCAL_SIZE 256)
# Device peak probes (gpu/peak.cpp): copy bandwidth, the FP32 and FP16 FMA rates, and the
# cooperative-matrix rate (only on devices with DeviceInfo::coopmat_f16).
qwenvk_kernel(OP CopyVec4 NAME copy_vec4 SOURCE copy.comp
              BINDINGS src dst WRITES dst PUSH CopyPush LOCAL_SIZE 256)
qwenvk_kernel(OP FmaChains NAME fma_chains SOURCE fma.comp
              BINDINGS out WRITES out PUSH FmaPush LOCAL_SIZE 256)
qwenvk_kernel(OP FmaChainsF16 NAME fma_chains_f16 SOURCE fma_f16.comp
              BINDINGS out WRITES out PUSH FmaPush LOCAL_SIZE 256 FEATURES float16)
qwenvk_kernel(OP FmaCoopmat NAME fma_coopmat SOURCE fma_coopmat.comp
              BINDINGS out WRITES out PUSH FmaPush LOCAL_SIZE 128 FEATURES coopmat_nv)
