# GGUF against llama.cpp's gguf-py (tools/gguf_reference.py), then our reader in the hidden
# Catch cases that compare with what the script wrote.
#   MODE=random: random blocks of every type, written by gguf-py's GGUFWriter, and its
#                dequantized values; metadata of every value type.
#   MODE=model:  every key and tensor of the real SmolLM2 file, read by gguf-py's GGUFReader.
# Without the Python environment (or the model) this prints SKIPPED, or fails when
# CC_REQUIRE_DATA=1. Run with -DPYTHON -DSCRIPT -DTESTS -DWORK -DMODE.
function(skip_or_fail why)
  if("$ENV{CC_REQUIRE_DATA}" STREQUAL "1")
    message(FATAL_ERROR "required data is missing: ${why}")
  endif()
  message("SKIPPED: ${why}")
endfunction()

function(run_checked what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (exit ${rc})\nstdout: ${out}\nstderr: ${err}")
  endif()
  message("${what}: ok\n${out}")
endfunction()

if(NOT EXISTS "${PYTHON}")
  skip_or_fail("${PYTHON} not found: run scripts/setup.sh python (or set -DCC_PYTHON)")
  return()
endif()
execute_process(COMMAND "${PYTHON}" -c "import gguf, numpy, safetensors" RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  skip_or_fail("${PYTHON} cannot import gguf, numpy and safetensors: run scripts/setup.sh python\n${err}")
  return()
endif()

if(MODE STREQUAL "random")
  set(out "${WORK}/random")
  file(REMOVE_RECURSE "${out}")
  run_checked("gguf-py reference files" "${PYTHON}" "${SCRIPT}" random "${out}")
  run_checked("our reader against them"
    ${CMAKE_COMMAND} -E env "CC_GGUF_REFERENCE_DIR=${out}" "${TESTS}" "[gguf_reference]" --warn NoTests)
elseif(MODE STREQUAL "model")
  if(DEFINED ENV{CC_MODEL_DIR} AND NOT "$ENV{CC_MODEL_DIR}" STREQUAL "")
    set(model_dir "$ENV{CC_MODEL_DIR}")
  else()
    set(model_dir "$ENV{HOME}/.cache/cushioncache/models")
  endif()
  set(model "${model_dir}/SmolLM2-135M-Instruct.Q4_1.gguf")
  if(NOT EXISTS "${model}")
    skip_or_fail("${model} not found: run scripts/fetch_models.sh (or set CC_MODEL_DIR)")
    return()
  endif()
  set(json "${WORK}/smollm2_reference.json")
  file(REMOVE "${json}")
  run_checked("gguf-py reading ${model}" "${PYTHON}" "${SCRIPT}" model "${model}" "${json}")
  run_checked("our reader against it"
    ${CMAKE_COMMAND} -E env "CC_GGUF_MODEL_REFERENCE=${json}" "${TESTS}" "[gguf_model_reference]" --warn NoTests)
else()
  message(FATAL_ERROR "MODE must be random or model, not '${MODE}'")
endif()
