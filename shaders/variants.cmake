# Every SPIR-V variant: a .comp plus defines. Names match the kernel table in gpu/kernels.cpp.
foreach(type F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K)
  string(TOLOWER ${type} suffix)
  qwenvk_shader(NAME matvec_${suffix} SOURCE matvec.comp DEFINES WEIGHT_${type})
  qwenvk_shader(NAME matmul_${suffix} SOURCE matmul.comp DEFINES WEIGHT_${type})
  qwenvk_shader(NAME embed_${suffix} SOURCE embed.comp DEFINES WEIGHT_${type})
endforeach()
# The cooperative-matrix GEMM; its SPIR-V (1.3 with SPV_NV_cooperative_matrix and
# SPV_KHR_vulkan_memory_model) is valid for the same Vulkan 1.1 target as the rest.
foreach(type F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K)
  string(TOLOWER ${type} suffix)
  qwenvk_shader(NAME matmul_coopmat_${suffix} SOURCE matmul_coopmat.comp DEFINES WEIGHT_${type})
endforeach()
qwenvk_shader(NAME rmsnorm SOURCE rmsnorm.comp)
qwenvk_shader(NAME rope SOURCE rope.comp)
qwenvk_shader(NAME swiglu SOURCE swiglu.comp)
qwenvk_shader(NAME attention SOURCE attention.comp)
qwenvk_shader(NAME topk_chunks SOURCE topk.comp DEFINES TOPK_CHUNKS)
qwenvk_shader(NAME topk_merge SOURCE topk.comp DEFINES TOPK_MERGE)
