# One CUDA runtime and one cuBLASLt in the process (a CUDA LibTorch build): the command
# line tool must load exactly the libcudart and libcublasLt files libtorch_cuda loads on
# its own (the wheel's nvidia-* packages), never the toolkit's second copy, and must not
# carry a static CUDA runtime of its own. ldd runs the real dynamic loader, so what it
# lists is what a run maps. Inputs: PROGRAM, LIBTORCH_CUDA.
function(resolved_libraries file out_var)
  execute_process(COMMAND ldd "${file}" RESULT_VARIABLE rc OUTPUT_VARIABLE text ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "ldd ${file} failed (${rc}): ${err}")
  endif()
  set(${out_var} "${text}" PARENT_SCOPE)
endfunction()

# The real files behind the lines of `ldd_text` whose library name matches `name_regex`.
function(files_of ldd_text name_regex out_var)
  string(REPLACE "\n" ";" lines "${ldd_text}")
  set(files "")
  foreach(line IN LISTS lines)
    if(line MATCHES "^[ \t]*(${name_regex}[^ ]*) => (.*)$")
      set(name "${CMAKE_MATCH_1}")
      set(target "${CMAKE_MATCH_2}")
      if(target MATCHES "not found")
        message(FATAL_ERROR "${name} is not found by the loader:\n${ldd_text}")
      endif()
      string(REGEX REPLACE " \\(0x[0-9a-f]+\\)$" "" path "${target}")
      get_filename_component(real "${path}" REALPATH)
      list(APPEND files "${real}")
    endif()
  endforeach()
  list(REMOVE_DUPLICATES files)
  set(${out_var} "${files}" PARENT_SCOPE)
endfunction()

resolved_libraries("${PROGRAM}" ours)
resolved_libraries("${LIBTORCH_CUDA}" torchs)
foreach(library cudart cublasLt)
  files_of("${ours}" "lib${library}\\.so" mine)
  files_of("${torchs}" "lib${library}\\.so" theirs)
  list(LENGTH mine count)
  if(NOT count EQUAL 1)
    message(FATAL_ERROR "${PROGRAM} loads ${count} lib${library} files (expected one): ${mine}\n${ours}")
  endif()
  if(NOT mine STREQUAL theirs)
    message(FATAL_ERROR "${PROGRAM} loads ${mine}, but libtorch_cuda on its own loads ${theirs}: two lib${library} "
                        "copies would serve one process (cmake/Dependencies.cmake links the one LibTorch loads)")
  endif()
  message(STATUS "lib${library}: ${mine}")
endforeach()

# A statically linked runtime defines the API itself instead of importing it.
find_program(NM nm)
if(NM)
  execute_process(COMMAND "${NM}" --defined-only "${PROGRAM}" OUTPUT_VARIABLE symbols ERROR_QUIET)
  if(symbols MATCHES "\n[0-9a-f]+ [Tt] cudaMalloc\n")
    message(FATAL_ERROR "${PROGRAM} defines cudaMalloc: a static CUDA runtime is linked in beside LibTorch's shared one")
  endif()
endif()
