# The paper's claim on the planted-outlier model (analysis/planted_sink.h: stories260K
# weights plus a sink mechanism keyed to token 4), through `cushioncache run`: per-tensor
# static W8A8 collapses without a prefix, the search finds the planted token, the tuner
# lowers its loss, and with the CushionCache prefix W8A8 perplexity is within 5% of float
# (float behind the same prefix, which is the model the prefix serves). Where oneDNN is
# built in, the W8A8 rows run on the real INT8 kernels (exec: int8).
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
set(MODEL "${DATA}/models/stories260K")
cc_require_file("${MODEL}/stories260K.bin")
cc_require_file("${DATA}/text/wikitext-2-raw/wiki.test.gptq.txt")
cc_require_file("${DATA}/text/c4/c4_validation_2k.jsonl")
if(CC_SKIPPED)
  return()
endif()

# configs/planted-outlier.yaml, shortened to fit a test.
set(exec fake)
set(label w8a8-per-tensor-static)
if(CC_HAVE_ONEDNN)
  set(exec int8)
  set(label "w8a8-per-tensor-static [int8]")
endif()
set(dir "${CMAKE_CURRENT_BINARY_DIR}/planted_pipeline_test")
file(REMOVE_RECURSE "${dir}")
file(MAKE_DIRECTORY "${dir}")
file(WRITE "${dir}/planted.yaml" "
name: planted-test
model: ${MODEL}/stories260K.bin
tokenizer: ${MODEL}/tok512.bin
quant: w8a8-per-tensor-static
exec: ${exec}
planted_sink: {sink_token: 4, trigger_tokens: [426, 432, 443, 450], from_layer: 1, channel: 17, value: 1000}
eval: {ppl: [wikitext2], max_windows: 40, tasks: []}
baselines: [bos]
search: {seed_prefix: bos, max_length: 3, tau: 0.5, text_tokens: 500, batch_size: 16}
tuning: {epochs: 1, batch_size: 4, seq_len: 256, samples: 16, lr: 0.001}
inspect: {samples: 2, seq_len: 128}
")
cc_run(run --config "${dir}/planted.yaml" --out "${dir}/out")
cc_expect_rc(0 "run")
foreach(f report.md results.json config.resolved.json artifacts/cushioncache.safetensors artifacts/searched.safetensors
          artifacts/bos.safetensors inspect/magnitudes.svg)
  if(NOT EXISTS "${dir}/out/${f}")
    message(FATAL_ERROR "run did not write ${f}")
  endif()
endforeach()

file(READ "${dir}/out/results.json" json)
string(JSON n LENGTH "${json}" rows)
math(EXPR last "${n} - 1")
foreach(i RANGE ${last})
  string(JSON setting GET "${json}" rows ${i} setting)
  string(JSON ppl GET "${json}" rows ${i} perplexity wikitext2 ppl)
  message("${setting}: ${ppl}")
  if(setting STREQUAL "no prefix, float")
    set(float "${ppl}")
  elseif(setting STREQUAL "no prefix, ${label}")
    set(static "${ppl}")
  elseif(setting STREQUAL "CushionCache, float")
    set(cc_float "${ppl}")
  elseif(setting STREQUAL "CushionCache, ${label}")
    set(cc_static "${ppl}")
  endif()
endforeach()
if(float STREQUAL "" OR static STREQUAL "" OR cc_float STREQUAL "" OR cc_static STREQUAL "")
  message(FATAL_ERROR "results.json lacks a row:\n${json}")
endif()

# CMake's math() is integer-only: compare perplexities in thousandths.
function(to_milli value out)
  if(NOT value MATCHES "^([0-9]+)(\\.([0-9]*))?")
    message(FATAL_ERROR "not a perplexity: ${value}")
  endif()
  string(SUBSTRING "${CMAKE_MATCH_3}000" 0 3 frac)
  math(EXPR milli "${CMAKE_MATCH_1} * 1000 + 1${frac} - 1000")
  set(${out} ${milli} PARENT_SCOPE)
endfunction()
to_milli(${float} float_m)
to_milli(${static} static_m)
to_milli(${cc_float} cc_float_m)
to_milli(${cc_static} cc_static_m)

# Without a prefix the planted outliers ruin the per-tensor scale: at least twice float.
math(EXPR collapse_limit "${float_m} * 2")
if(static_m LESS collapse_limit)
  message(FATAL_ERROR "per-tensor static W8A8 did not collapse without a prefix: ${static} vs float ${float}")
endif()
string(JSON first GET "${json}" search prefix 0)
string(JSON second GET "${json}" search prefix 1)
if(NOT first EQUAL 1 OR NOT second EQUAL 4)
  message(FATAL_ERROR "the search did not find the planted token 4 after BOS: ${first} ${second}")
endif()
string(JSON before GET "${json}" tuning loss_before)
string(JSON after GET "${json}" tuning loss_after)
if(NOT after LESS before)
  message(FATAL_ERROR "tuning did not lower the loss: ${before} -> ${after}")
endif()
math(EXPR recovered_limit "${cc_float_m} * 105 / 100")
math(EXPR float_limit "${float_m} * 105 / 100")
if(cc_static_m GREATER recovered_limit OR cc_static_m GREATER float_limit)
  message(FATAL_ERROR "W8A8 with the CushionCache prefix (${cc_static}) is not within 5% of float with it (${cc_float}) or above float without it (${float})")
endif()
