# A parity check against transformers: runs a tools/*_parity.py script with the project's
# Python (CC_PYTHON) on the CLI and prints its table (ctest -V or --output-on-failure
# shows it; it is also written to OUT). The script exits 77 after printing "SKIPPED: ..."
# when the model, the data or a package is missing; without the Python environment this
# skips too, and under CC_REQUIRE_DATA=1 (CI) every skip is a failure.
# Run with -DPYTHON -DSCRIPT -DCLI -DOUT [-DDEFAULT_DATA_DIR] [-DIMPORTS="torch transformers ..."].
function(skip_or_fail why)
  if("$ENV{CC_REQUIRE_DATA}" STREQUAL "1")
    message(FATAL_ERROR "required for CI (CC_REQUIRE_DATA=1): ${why}")
  endif()
  message("SKIPPED: ${why}")
endfunction()

if(NOT EXISTS "${PYTHON}")
  skip_or_fail("${PYTHON} not found: run scripts/setup.sh python (or configure with -DCC_PYTHON=...)")
  return()
endif()
if(NOT IMPORTS)
  set(IMPORTS "torch transformers safetensors")
endif()
string(REPLACE " " ", " import_list "${IMPORTS}")
execute_process(COMMAND "${PYTHON}" -c "import ${import_list}" RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  skip_or_fail("${PYTHON} cannot import ${import_list}: run scripts/setup.sh python\n${err}")
  return()
endif()

# The scripts read CC_DATA_DIR as the CLI does; the configured default stands in for it.
if(("$ENV{CC_DATA_DIR}" STREQUAL "") AND DEFAULT_DATA_DIR)
  set(ENV{CC_DATA_DIR} "${DEFAULT_DATA_DIR}")
endif()
execute_process(COMMAND "${PYTHON}" "${SCRIPT}" --cli "${CLI}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
get_filename_component(out_dir "${OUT}" DIRECTORY)
file(MAKE_DIRECTORY "${out_dir}")
file(WRITE "${OUT}" "${out}")
if(rc EQUAL 77)
  string(REGEX REPLACE "^SKIPPED: " "" why "${out}")
  string(STRIP "${why}" why)
  skip_or_fail("${why}")
  return()
endif()
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${SCRIPT} failed (exit ${rc})\n${out}\nstderr (tail):\n${err}")
endif()
message("${out}")
