# Whether the BOS that starts every calibration window counts toward the static ranges:
# `eval --calibration-include-bos false` calibrates without it and records so; `run` with
# `calibration: {include_bos: both}` reports the no-prefix quantized row both ways, and
# every run report carries the definitions table (this recipe vs the paper vs
# SmoothQuant's reference) with the known differences from the paper marked; with
# `also_quant`, every prefix is evaluated under more recipes and the report's Table-1
# layout has a column per recipe.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
set(MODEL "${DATA}/models/stories260K")
cc_require_file("${MODEL}/stories260K.bin")
cc_require_file("${DATA}/text/wikitext-2-raw/wiki.test.gptq.txt")
cc_require_file("${DATA}/text/c4/c4_validation_2k.jsonl")
if(CC_SKIPPED)
  return()
endif()
set(dir "${CMAKE_CURRENT_BINARY_DIR}/calibration_bos_test")
file(REMOVE_RECURSE "${dir}")
file(MAKE_DIRECTORY "${dir}")
set(M --model "${MODEL}/stories260K.bin" --tokenizer "${MODEL}/tok512.bin")

cc_run(eval ${M} --ppl wikitext2 --seq-len 128 --max-windows 2 --quant w8a8-per-tensor-static --calibration-include-bos false
       --out "${dir}/eval.json")
cc_expect_rc(0 "eval --calibration-include-bos false")
file(READ "${dir}/eval.json" json)
string(JSON calibration GET "${json}" runs 0 calibration)
string(JSON include_bos GET "${json}" runs 0 recipe calibration include_bos)
string(JSON weights GET "${json}" runs 0 recipe calibration weights)
if(NOT calibration MATCHES "BOS first, not counted" OR NOT include_bos STREQUAL "OFF" OR NOT weights STREQUAL "float")
  message(FATAL_ERROR "eval did not record the calibration settings: '${calibration}' include_bos=${include_bos} weights=${weights}")
endif()
cc_run(eval ${M} --quant w8a8-per-tensor-static --calibration-include-bos sometimes)
cc_expect_rc(2 "a bad --calibration-include-bos")

file(WRITE "${dir}/run.yaml" "
model: ${MODEL}/stories260K.bin
tokenizer: ${MODEL}/tok512.bin
quant: w8a8-per-tensor-static
also_quant: [w8a8-per-tensor-dynamic]
eval: {ppl: [wikitext2], seq_len: 128, max_windows: 2}
baselines: []
search: {max_length: 2, text_tokens: 64, batch_size: 64}
tuning: {enabled: false}
inspect: {samples: 1, seq_len: 64}
calibration: {include_bos: both}
")
cc_run(run --config "${dir}/run.yaml" --out "${dir}/out")
cc_expect_rc(0 "run with calibration.include_bos: both")
file(READ "${dir}/out/results.json" json)
string(JSON n LENGTH "${json}" rows)
math(EXPR last "${n} - 1")
set(settings "")
foreach(i RANGE ${last})
  string(JSON setting GET "${json}" rows ${i} setting)
  string(JSON calibration ERROR_VARIABLE none GET "${json}" rows ${i} calibration)
  list(APPEND settings "${setting}")
  if(setting STREQUAL "no prefix, BOS counted, w8a8-per-tensor-static" AND NOT calibration MATCHES "BOS first\\)")
    message(FATAL_ERROR "the BOS-counted row calibrated otherwise: ${calibration}")
  endif()
  if(setting STREQUAL "no prefix, BOS not counted, w8a8-per-tensor-static" AND NOT calibration MATCHES "BOS first, not counted")
    message(FATAL_ERROR "the BOS-not-counted row calibrated otherwise: ${calibration}")
  endif()
endforeach()
foreach(expected "no prefix, float" "no prefix, BOS counted, w8a8-per-tensor-static" "no prefix, BOS not counted, w8a8-per-tensor-static"
                 "searched prefix, w8a8-per-tensor-static" "searched prefix, w8a8-per-tensor-dynamic" "CushionCache, w8a8-per-tensor-dynamic")
  list(FIND settings "${expected}" found)
  if(found EQUAL -1)
    message(FATAL_ERROR "results.json lacks the row '${expected}': ${settings}")
  endif()
endforeach()

# A dynamic recipe takes no ranges from calibration: whether the BOS was counted cannot
# change its rows.
set(dynamic_ppl "")
foreach(i RANGE ${last})
  string(JSON setting GET "${json}" rows ${i} setting)
  if(setting MATCHES "^no prefix, BOS .*counted, w8a8-per-tensor-dynamic$")
    string(JSON ppl GET "${json}" rows ${i} perplexity wikitext2 ppl)
    list(APPEND dynamic_ppl "${ppl}")
  endif()
endforeach()
list(LENGTH dynamic_ppl n_dynamic)
list(REMOVE_DUPLICATES dynamic_ppl)
list(LENGTH dynamic_ppl n_distinct)
if(NOT n_dynamic EQUAL 2 OR NOT n_distinct EQUAL 1)
  message(FATAL_ERROR "the two no-prefix dynamic rows differ or are missing: ${dynamic_ppl}")
endif()

# The definitions: six of them; per-channel weights and C4 calibration differ from the paper.
string(JSON d LENGTH "${json}" definitions)
if(NOT d EQUAL 6)
  message(FATAL_ERROR "results.json has ${d} definitions, expected 6")
endif()
set(differing "")
math(EXPR last "${d} - 1")
foreach(i RANGE ${last})
  string(JSON what GET "${json}" definitions ${i} what)
  string(JSON differs GET "${json}" definitions ${i} differs_from_paper)
  if(differs)
    list(APPEND differing "${what}")
  endif()
endforeach()
if(NOT differing STREQUAL "weight granularity;calibration data")
  message(FATAL_ERROR "unexpected differences from the paper: '${differing}'")
endif()
file(READ "${dir}/out/report.md" report)
if(NOT report MATCHES "## Definitions: recipe `w8a8-per-tensor-static`" OR NOT report MATCHES "w8-per-channel-sym \\*\\*\\(differs from the paper\\)\\*\\*"
   OR NOT report MATCHES "include_bos: both"
   OR NOT report MATCHES "\\| prefix \\| float \\| w8a8-per-tensor-static \\| w8a8-per-tensor-dynamic \\|")
  message(FATAL_ERROR "report.md lacks the definitions:\n${report}")
endif()

# Bad settings: exit 2, naming the file, the line and the key. Each case: the YAML line, the key.
foreach(bad "also_quant: [w8a8-per-tensor-static]|also_quant" "calibration: {include_bos: sometimes}|calibration.include_bos")
  string(REPLACE "|" ";" bad "${bad}")
  list(GET bad 0 line)
  list(GET bad 1 key)
  file(WRITE "${dir}/bad.yaml" "model: ${MODEL}/stories260K.bin\n${line}\n")
  cc_run(run --config "${dir}/bad.yaml" --out "${dir}/bad")
  cc_expect_rc(2 "run with '${line}'")
  if(NOT ERR MATCHES "bad.yaml:2" OR NOT ERR MATCHES "${key}")
    message(FATAL_ERROR "the error for '${line}' does not name the file, line and key: ${ERR}")
  endif()
endforeach()

# The same settings from the command line (run --set): the same check and message, located
# at the override; --settings lists every key.
file(WRITE "${dir}/good.yaml" "model: ${MODEL}/stories260K.bin\n")
cc_run(run --config "${dir}/good.yaml" --set search.tau=0 --out "${dir}/bad")
cc_expect_rc(2 "run --set search.tau=0")
if(NOT ERR MATCHES "override search.tau: 'search.tau' must be in \\(0, 1\\], got 0")
  message(FATAL_ERROR "run --set search.tau=0 does not name the override and the rule: ${ERR}")
endif()
cc_run(run --config "${dir}/good.yaml" --set "calibration={include_bos: sometimes}" --out "${dir}/bad")
cc_expect_rc(2 "run --set calibration={include_bos: sometimes}")
if(NOT ERR MATCHES "override calibration: 'calibration.include_bos' must be one of recipe, true, false, both, got sometimes")
  message(FATAL_ERROR "a section override is not checked as the file is: ${ERR}")
endif()
cc_run(run --settings)
cc_expect_rc(0 "run --settings")
if(NOT OUT MATCHES "search.tau" OR NOT OUT MATCHES "calibration.include_bos" OR NOT OUT MATCHES "planted_sink.trigger_tokens")
  message(FATAL_ERROR "run --settings does not list the keys:\n${OUT}")
endif()
