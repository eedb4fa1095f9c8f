# `cushioncache tokenize --tokenizer ggml-vocab-NAME.gguf --bos no` prints the .out line of
# llama.cpp's vocabulary tests (ids from each model's Hugging Face tokenizer): a few
# strings through --text, and all 46 of each file through --lines (one JSON string per
# line), for every vocabulary in tokenizers/gguf/.
cmake_policy(SET CMP0007 NEW)  # list() keeps empty elements: some tests are empty strings
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
set(names llama-spm gpt-2 phi-3 mpt deepseek-llm)
foreach(name ${names})
  foreach(ext "" .inp .out)
    cc_require_file("${DATA}/tokenizers/gguf/ggml-vocab-${name}.gguf${ext}")
  endforeach()
endforeach()
if(CC_SKIPPED)
  return()
endif()

set(sep "\n__ggml_vocab_test__\n")
foreach(name ${names})
  set(gguf "${DATA}/tokenizers/gguf/ggml-vocab-${name}.gguf")
  file(READ "${gguf}.inp" raw)
  file(READ "${gguf}.out" expected)
  # .out lines start with a space; ours do not.
  string(REGEX REPLACE "(^|\n) " "\\1" expected "${expected}")

  # The tests, as llama.cpp's test-tokenizer-0 cuts them, each written as a JSON string.
  # The texts hold no characters that need escaping besides these (and none hold ';').
  set(lines_file "${CMAKE_CURRENT_BINARY_DIR}/gguf_vocab_${name}.jsonl")
  file(WRITE "${lines_file}" "")
  set(texts "")
  string(LENGTH "${raw}" raw_length)
  set(pos 0)
  while(pos LESS raw_length)
    string(SUBSTRING "${raw}" ${pos} -1 rest)
    string(FIND "${rest}" "${sep}" next)
    if(next EQUAL -1)
      set(text "${rest}")
      set(pos ${raw_length})
    else()
      string(SUBSTRING "${rest}" 0 ${next} text)
      string(LENGTH "${sep}" sep_length)
      math(EXPR pos "${pos} + ${next} + ${sep_length}")
    endif()
    list(APPEND texts "${text}")
    string(REPLACE "\\" "\\\\" escaped "${text}")
    string(REPLACE "\"" "\\\"" escaped "${escaped}")
    string(REPLACE "\n" "\\n" escaped "${escaped}")
    string(REPLACE "\t" "\\t" escaped "${escaped}")
    file(APPEND "${lines_file}" "\"${escaped}\"\n")
  endwhile()

  execute_process(COMMAND ${CLI} tokenize --tokenizer "${gguf}" --lines "${lines_file}" --bos no
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name}: tokenize --lines exited ${rc}\n${err}")
  endif()
  if(NOT out STREQUAL expected)
    message(FATAL_ERROR "${name}: tokenize --lines differs from ${gguf}.out\n--- got ---\n${out}\n--- expected ---\n${expected}")
  endif()
  file(REMOVE "${lines_file}")

  # A few through --text: a leading space, newlines with indentation, mixed scripts and emoji.
  string(REPLACE "\n" ";" expected_lines "${expected}")
  foreach(i 12 28 32)
    list(GET texts ${i} text)
    list(GET expected_lines ${i} want)
    execute_process(COMMAND ${CLI} tokenize --tokenizer "${gguf}" --text "${text}" --bos no
                    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    string(STRIP "${out}" got)
    if(NOT rc EQUAL 0 OR NOT got STREQUAL want)
      message(FATAL_ERROR "${name} test ${i}: exit ${rc}, got '${got}', expected '${want}'\n${err}")
    endif()
  endforeach()
endforeach()
