# Shared by the CLI tests (run with cmake -P): where the data is, and how to skip.
if(DEFINED ENV{CC_DATA_DIR} AND NOT "$ENV{CC_DATA_DIR}" STREQUAL "")
  set(DATA "$ENV{CC_DATA_DIR}")
else()
  set(DATA "${DEFAULT_DATA_DIR}")
endif()

# Prints the marker ctest's SKIP_REGULAR_EXPRESSION looks for, unless CI requires data.
function(cc_require_file path)
  if(NOT EXISTS "${path}")
    if("$ENV{CC_REQUIRE_DATA}" STREQUAL "1")
      message(FATAL_ERROR "required data is missing: ${path}")
    endif()
    message("SKIPPED: ${path} not found (set CC_DATA_DIR)")
    set(CC_SKIPPED TRUE PARENT_SCOPE)
  endif()
endfunction()

# Runs the CLI; sets RC, OUT and ERR in the caller.
function(cc_run)
  execute_process(COMMAND ${CLI} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(RC "${rc}" PARENT_SCOPE)
  set(OUT "${out}" PARENT_SCOPE)
  set(ERR "${err}" PARENT_SCOPE)
endfunction()

function(cc_expect_rc expected what)
  if(NOT "${RC}" STREQUAL "${expected}")
    message(FATAL_ERROR "${what}: exit code ${RC}, expected ${expected}\nstdout: ${OUT}\nstderr: ${ERR}")
  endif()
endfunction()
