# `plan-memory` on LLaMA-2-70B's config.json (written here; no weights needed): the
# placement under 60 GiB worked out by hand, the JSON file, and a budget below the
# minimum refused with the usage exit code.
#   block = q, o 8192^2 + k, v 8192 x 1024 + gate, up, down 8192 x 28672 + 2 norms
#         = 855,654,400 params = 1,711,308,800 B in bfloat16
#   other = 2 x 32000 x 8192 + 8192 = 524,296,192 params = 1,048,592,384 B
#   60 GiB = 64,424,509,440 B >= other + (r + 2) x block  =>  r = 35 resident, 45 streamed
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
set(dir "${CMAKE_CURRENT_BINARY_DIR}/plan_memory_tmp")
file(REMOVE_RECURSE "${dir}")
file(MAKE_DIRECTORY "${dir}/llama-2-70b")
file(WRITE "${dir}/llama-2-70b/config.json" [=[
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8192, "intermediate_size": 28672,
 "num_attention_heads": 64, "num_hidden_layers": 80, "num_key_value_heads": 8, "vocab_size": 32000,
 "max_position_embeddings": 4096, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": false,
 "torch_dtype": "float16", "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu"}
]=])
cc_run(plan-memory --model "${dir}/llama-2-70b" --max-gpu-memory 60GiB --out "${dir}/plan.json")
cc_expect_rc(0 "plan-memory 60GiB")
if(NOT OUT MATCHES "35 blocks resident, 45 streamed")
  message(FATAL_ERROR "plan-memory: unexpected placement:\n${OUT}")
endif()
file(READ "${dir}/plan.json" plan)
string(JSON other GET "${plan}" other_bytes)
string(JSON block0 GET "${plan}" block_bytes 0)
if(NOT other STREQUAL "1048592384" OR NOT block0 STREQUAL "1711308800")
  message(FATAL_ERROR "plan-memory: other_bytes ${other}, block 0 ${block0}; expected 1048592384 and 1711308800")
endif()
cc_run(plan-memory --model "${dir}/llama-2-70b/config.json" --max-gpu-memory 4GiB)
cc_expect_rc(2 "plan-memory 4GiB")
if(NOT ERR MATCHES "--max-gpu-memory 4GiB: the device memory budget 4.00 GiB is below[^\n]*4.16 GiB")
  message(FATAL_ERROR "plan-memory 4GiB: no error naming the budget and the minimum:\n${ERR}")
endif()
file(REMOVE_RECURSE "${dir}")
