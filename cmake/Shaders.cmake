# Compiles each shader variant with glslc and generates one C++ source that embeds all of them.
# A variant is a .comp file plus -D defines; glslc's depfile makes an edited .glsl include
# rebuild exactly the variants that include it.
#
# The variant list lives in shaders/variants.cmake so that adding a kernel touches one place
# on the build side (plus its row in gpu/kernels.cpp).

set(QWENVK_SHADER_DIR ${CMAKE_SOURCE_DIR}/shaders)
set(QWENVK_SPIRV_DIR ${CMAKE_BINARY_DIR}/spirv)
file(MAKE_DIRECTORY ${QWENVK_SPIRV_DIR} ${CMAKE_BINARY_DIR}/generated)

set(QWENVK_SPIRV_FILES)
set(QWENVK_SPIRV_NAMES)

# qwenvk_shader(NAME name SOURCE file.comp [DEFINES A=1 B ...])
function(qwenvk_shader)
  cmake_parse_arguments(ARG "" "NAME;SOURCE" "DEFINES" ${ARGN})
  set(out ${QWENVK_SPIRV_DIR}/${ARG_NAME}.spv)
  set(defines)
  foreach(d IN LISTS ARG_DEFINES)
    list(APPEND defines -D${d})
  endforeach()
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${GLSLC} --target-env=vulkan1.1 -O -Werror -I ${QWENVK_SHADER_DIR} ${defines}
            -MD -MF ${out}.d -o ${out} ${QWENVK_SHADER_DIR}/${ARG_SOURCE}
    DEPENDS ${QWENVK_SHADER_DIR}/${ARG_SOURCE}
    DEPFILE ${out}.d
    COMMENT "glslc ${ARG_NAME}"
    VERBATIM)
  set(QWENVK_SPIRV_FILES ${QWENVK_SPIRV_FILES} ${out} PARENT_SCOPE)
  set(QWENVK_SPIRV_NAMES ${QWENVK_SPIRV_NAMES} ${ARG_NAME} PARENT_SCOPE)
endfunction()

include(${QWENVK_SHADER_DIR}/variants.cmake)

set(QWENVK_SPIRV_SOURCE ${CMAKE_BINARY_DIR}/generated/spirv_blobs.cpp)
add_custom_command(
  OUTPUT ${QWENVK_SPIRV_SOURCE}
  COMMAND ${CMAKE_COMMAND} -DOUTPUT=${QWENVK_SPIRV_SOURCE} -DSPIRV_DIR=${QWENVK_SPIRV_DIR}
          "-DNAMES=${QWENVK_SPIRV_NAMES}" -P ${CMAKE_SOURCE_DIR}/cmake/EmbedSpirv.cmake
  DEPENDS ${QWENVK_SPIRV_FILES} ${CMAKE_SOURCE_DIR}/cmake/EmbedSpirv.cmake
  COMMENT "Embedding SPIR-V"
  VERBATIM)
add_custom_target(qwenvk_spirv DEPENDS ${QWENVK_SPIRV_SOURCE})
