# `cushioncache eval` on stories260K writes a results JSON with the model's identity and,
# per variant (float here), the resolved settings, perplexity per corpus and metrics per
# task; it prints a table. With --quant it compares variants.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
set(MODEL "${DATA}/models/stories260K")
cc_require_file("${MODEL}/stories260K.bin")
cc_require_file("${DATA}/text/wikitext-2-raw/wiki.test.gptq.txt")
cc_require_file("${DATA}/tasks/llm-foundry/copa.jsonl")
if(CC_SKIPPED)
  return()
endif()
# Into a folder that does not exist yet: eval creates it before any work.
set(out "${CMAKE_CURRENT_BINARY_DIR}/eval_results_test/new/results.json")
file(REMOVE_RECURSE "${CMAKE_CURRENT_BINARY_DIR}/eval_results_test")
cc_run(eval --model "${MODEL}/stories260K.bin" --tokenizer "${MODEL}/tok512.bin" --ppl wikitext2 --seq-len 256
       --max-windows 4 --tasks copa --limit 20 --out "${out}")
cc_expect_rc(0 "eval")
if(NOT OUT MATCHES "wikitext2 +256 +4 +1020" OR NOT OUT MATCHES "copa +acc")
  message(FATAL_ERROR "unexpected table:\n${OUT}")
endif()
file(READ "${out}" json)
string(JSON ppl GET "${json}" runs 0 perplexity wikitext2 ppl)
string(JSON scored GET "${json}" runs 0 perplexity wikitext2 scored_tokens)
string(JSON acc GET "${json}" runs 0 tasks copa metrics acc value)
string(JSON n GET "${json}" runs 0 tasks copa n)
string(JSON fingerprint GET "${json}" runs 0 fingerprint)
string(JSON seq GET "${json}" runs 0 settings seq_len)
string(JSON variant GET "${json}" runs 0 variant)
string(JSON layers GET "${json}" model layers)
if(NOT scored EQUAL 1020 OR NOT n EQUAL 20 OR NOT seq EQUAL 256 OR NOT fingerprint MATCHES "^[0-9a-f]+$"
   OR NOT variant STREQUAL "float" OR NOT layers EQUAL 5)
  message(FATAL_ERROR "unexpected results: scored=${scored} n=${n} seq_len=${seq} fingerprint=${fingerprint} variant=${variant}")
endif()
if(ppl LESS_EQUAL 1 OR acc LESS 0 OR acc GREATER 1)
  message(FATAL_ERROR "implausible values: ppl=${ppl} acc=${acc}")
endif()
file(REMOVE "${out}")

# Float and a quantized variant side by side, one row each.
cc_run(eval --model "${MODEL}/stories260K.bin" --tokenizer "${MODEL}/tok512.bin" --ppl wikitext2 --seq-len 256
       --max-windows 2 --quant float,w8a8-per-token-dynamic)
cc_expect_rc(0 "eval --quant")
if(NOT OUT MATCHES "float +[0-9.]+" OR NOT OUT MATCHES "w8a8-per-token-dynamic +[0-9.]+")
  message(FATAL_ERROR "unexpected comparison table:\n${OUT}")
endif()
cc_run(eval --model "${MODEL}/stories260K.bin" --tokenizer "${MODEL}/tok512.bin" --quant w8a9)
cc_expect_rc(2 "unknown quantization")

# Bad values exit with 2 and name the flag or task.
cc_run(eval --model "${MODEL}/stories260K.bin" --tokenizer "${MODEL}/tok512.bin" --tasks nosuchtask)
cc_expect_rc(2 "unknown task")
if(NOT ERR MATCHES "nosuchtask")
  message(FATAL_ERROR "the error does not name the task: ${ERR}")
endif()
# --seq-len is the setting eval.seq_len: 0 means the model's context, as in a config file,
# and a negative window is refused by name.
cc_run(eval --model "${MODEL}/stories260K.bin" --tokenizer "${MODEL}/tok512.bin" --seq-len -1)
cc_expect_rc(2 "negative --seq-len")
if(NOT ERR MATCHES "--seq-len: 'eval.seq_len' must be >= 0")
  message(FATAL_ERROR "eval --seq-len -1 does not name the flag and the rule: ${ERR}")
endif()

# Real INT8 execution (--exec int8): the row says so, the JSON records it. Per-token
# dynamic activations run as one GEMM with a vector of activation scales and give what
# fake quantization gives (perplexity within 0.2%); a recipe the kernels cannot run
# (4-bit weights) is unsupported, exit 4, naming why.
if(CC_HAVE_ONEDNN)
  cc_run(eval --model "${MODEL}/stories260K.bin" --tokenizer "${MODEL}/tok512.bin" --ppl wikitext2 --seq-len 256
         --max-windows 2 --quant w8a8-per-tensor-static --exec int8 --out "${out}")
  cc_expect_rc(0 "eval --exec int8")
  file(READ "${out}" json)
  string(JSON execution GET "${json}" runs 0 execution)
  if(NOT OUT MATCHES "w8a8-per-tensor-static \\[int8\\]" OR NOT execution STREQUAL "int8")
    message(FATAL_ERROR "eval --exec int8: execution=${execution}\n${OUT}")
  endif()
  foreach(exec fake int8)
    cc_run(eval --model "${MODEL}/stories260K.bin" --tokenizer "${MODEL}/tok512.bin" --ppl wikitext2 --seq-len 256
           --max-windows 4 --quant w8a8-per-token-dynamic --exec ${exec} --out "${out}")
    cc_expect_rc(0 "eval --quant w8a8-per-token-dynamic --exec ${exec}")
    file(READ "${out}" json)
    string(JSON per_token_${exec} GET "${json}" runs 0 perplexity wikitext2 ppl)
  endforeach()
  cc_relative_difference(difference "${per_token_int8}" "${per_token_fake}")
  if(difference GREATER 2000)
    message(FATAL_ERROR "per-token dynamic on the INT8 kernels: ppl ${per_token_int8}, fake quantization ${per_token_fake} "
                        "(${difference} ppm apart, above 0.2%)")
  endif()
  message("per-token dynamic: int8 ppl ${per_token_int8}, fake ${per_token_fake} (${difference} ppm apart)")
  set(w4_recipe "${CMAKE_CURRENT_BINARY_DIR}/eval_results_test/w4a8.yaml")
  file(WRITE "${w4_recipe}" "name: w4a8\nweights: w4-per-channel-sym\nactivations: a8-per-tensor-dynamic-sym\n")
  cc_run(eval --model "${MODEL}/stories260K.bin" --tokenizer "${MODEL}/tok512.bin" --max-windows 2 --quant "${w4_recipe}" --exec int8)
  cc_expect_rc(4 "4-bit weights on the INT8 kernels")
  if(NOT ERR MATCHES "8-bit symmetric")
    message(FATAL_ERROR "the error does not say why:\n${ERR}")
  endif()
endif()
