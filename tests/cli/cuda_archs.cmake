# The CUDA kernels carry SASS for every arch of CC_CUDA_ARCHITECTURES (sm_80 and sm_90a by
# default), in each kernel source: a CUDA LibTorch's CMake sets CMAKE_CUDA_ARCHITECTURES
# to OFF, which would leave nvcc's default arch (CMakeLists.txt applies ours again).
# --dump-elf, not --list-elf: the cubin names say sm_90 for sm_90a, the ELF headers tell
# them apart. Inputs: CUOBJDUMP, LIBRARY (the kernels' static library), ARCHS ("80;90a").
execute_process(COMMAND "${CUOBJDUMP}" --dump-elf "${LIBRARY}" RESULT_VARIABLE rc OUTPUT_VARIABLE dump ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cuobjdump --dump-elf ${LIBRARY} failed (${rc}): ${err}")
endif()
string(REGEX MATCHALL "member [^\n]*:[^:\n]+:\n|arch = sm_[0-9a-z]+" lines "${dump}")
set(member "")
set(found "")
foreach(line IN LISTS lines)
  if(line MATCHES "^member [^\n]*:([^:\n]+):")
    set(member "${CMAKE_MATCH_1}")
  elseif(line MATCHES "^arch = sm_([0-9a-z]+)$")
    list(APPEND found "${member}=${CMAKE_MATCH_1}")
  endif()
endforeach()
foreach(source quantize_kernels.cu.o int8_gemm_kernels.cu.o)
  foreach(arch IN LISTS ARCHS)
    list(FIND found "${source}=${arch}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "${source} in ${LIBRARY} has no sm_${arch} code; found: ${found}")
    endif()
  endforeach()
endforeach()
message(STATUS "device code in ${LIBRARY}: ${found}")
