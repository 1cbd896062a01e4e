# Fails when a C++ file includes a header from a layer above its own (cmake -P, run by the
# check_layers target on every build). Folders are the architecture:
#
#   base, shaders  ->  gpu  ->  model, store  ->  chat  ->  ui, server  ->  app
#
# A file may include headers of its own folder and of lower ranks only; model and store share a
# rank and so may not include each other, nor may ui and server. tests/ and fuzz/ may include anything, and nothing may
# include them.
if(NOT SOURCE_DIR)
  message(FATAL_ERROR "usage: cmake -DSOURCE_DIR=<checkout> -P CheckLayers.cmake")
endif()

set(rank_base 0)
set(rank_shaders 0)
set(rank_gpu 1)
set(rank_model 2)
set(rank_store 2)
set(rank_chat 3)
set(rank_ui 4)
set(rank_server 4)
set(rank_app 5)
set(rank_tests 6)
set(rank_fuzz 6)
set(layers base shaders gpu model store chat ui server app tests fuzz)

set(violations "")
foreach(layer IN LISTS layers)
  file(GLOB_RECURSE files "${SOURCE_DIR}/${layer}/*.h" "${SOURCE_DIR}/${layer}/*.cpp")
  foreach(file IN LISTS files)
    file(STRINGS "${file}" includes REGEX "^[ \t]*#[ \t]*include[ \t]*\"[^\"]+\"")
    foreach(line IN LISTS includes)
      string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\".*" "\\1" header "${line}")
      if(NOT header MATCHES "^([a-z_]+)/")
        continue()
      endif()
      set(target "${CMAKE_MATCH_1}")
      if(NOT DEFINED rank_${target} OR target STREQUAL layer)
        continue()
      endif()
      if(target STREQUAL "tests" OR target STREQUAL "fuzz" OR NOT rank_${target} LESS rank_${layer})
        file(RELATIVE_PATH where "${SOURCE_DIR}" "${file}")
        string(APPEND violations "  ${where} (${layer}) includes ${header} (${target})\n")
      endif()
    endforeach()
  endforeach()
endforeach()

if(violations)
  message(FATAL_ERROR "Includes that point to a higher layer (base, shaders -> gpu -> model, store -> chat -> ui, server -> app):\n${violations}")
endif()
