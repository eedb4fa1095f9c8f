# The prefix search and tuning across two CPU processes on loopback (Gloo), started the
# way torchrun starts ranks (scripts/launch_ranks.sh): the same prefix tokens as one
# process, and tuning that runs data-parallel. A rank
# that leaves mid-job makes the other fail with exit code 130 and a message, not hang;
# a rank whose peers never come gives up after --rank-timeout.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
set(MODEL "${DATA}/models/stories260K")
cc_require_file("${MODEL}/stories260K.bin")
cc_require_file("${DATA}/text/c4/c4_validation_2k.jsonl")
if(CC_SKIPPED)
  return()
endif()
set(dir "${CMAKE_CURRENT_BINARY_DIR}/distributed_search_test")
file(REMOVE_RECURSE "${dir}")
file(MAKE_DIRECTORY "${dir}")
string(RANDOM LENGTH 3 ALPHABET 0123456789 offset)
math(EXPR port "29000 + ${offset}")
# tau 0.99 accepts on stories260K, so the search takes two steps.
set(SEARCH search --model "${MODEL}/stories260K.bin" --tokenizer "${MODEL}/tok512.bin" --tau 0.99 --text-tokens 64)

function(prefix_of state_file out_var)
  file(READ "${state_file}" json)
  string(JSON prefix GET "${json}" result prefix)
  set(${out_var} "${prefix}" PARENT_SCOPE)
endfunction()

cc_run(${SEARCH} --max-length 3 --out "${dir}/one.safetensors")
cc_expect_rc(0 "one-process search")
prefix_of("${dir}/one.safetensors.search.json" one)

execute_process(COMMAND bash "${LAUNCH}" --nproc 2 --master-port ${port} -- ${CLI} ${SEARCH} --max-length 3 --out "${dir}/two.safetensors"
                RESULT_VARIABLE RC OUTPUT_VARIABLE OUT ERROR_VARIABLE ERR)
cc_expect_rc(0 "two-rank search")
prefix_of("${dir}/two.safetensors.search.json" two)
if(NOT one STREQUAL two)
  message(FATAL_ERROR "two ranks found prefix ${two}, one process ${one}\n${ERR}")
endif()
if(NOT OUT MATCHES "prefix of 3 tokens")
  message(FATAL_ERROR "rank 0 did not report the prefix:\n${OUT}\n${ERR}")
endif()

# Tuning the found prefix data-parallel over two ranks: rank 0 writes the artifact; the
# loss before tuning (summed over the ranks' windows) reads as one process's.
set(TUNE tune --model "${MODEL}/stories260K.bin" --tokenizer "${MODEL}/tok512.bin" --prefix "${dir}/one.safetensors"
    --samples 4 --seq-len 64 --epochs 1)
cc_run(${TUNE} --out "${dir}/tuned1.safetensors")
cc_expect_rc(0 "one-process tune")
string(REGEX MATCH "tuning: loss [0-9.]+" before_one "${ERR}")
math(EXPR port "${port} + 1")
execute_process(COMMAND bash "${LAUNCH}" --nproc 2 --master-port ${port} -- ${CLI} ${TUNE} --out "${dir}/tuned2.safetensors"
                RESULT_VARIABLE RC OUTPUT_VARIABLE OUT ERROR_VARIABLE ERR)
cc_expect_rc(0 "two-rank tune")
string(REGEX MATCH "tuning: loss [0-9.]+" before_two "${ERR}")
if(before_one STREQUAL "" OR NOT before_one STREQUAL before_two OR NOT EXISTS "${dir}/tuned2.safetensors")
  message(FATAL_ERROR "two-rank tuning: '${before_two}' vs one process '${before_one}':\n${ERR}")
endif()

# Rank 1 stops after one step (a shorter --max-length): rank 0's next collective fails.
math(EXPR port "${port} + 1")
set(ENV_COMMON WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=${port})
execute_process(COMMAND ${CMAKE_COMMAND} -E env ${ENV_COMMON} RANK=1 ${CLI} ${SEARCH} --max-length 2 --out "${dir}/gone.safetensors"
                COMMAND ${CMAKE_COMMAND} -E env ${ENV_COMMON} RANK=0 ${CLI} ${SEARCH} --max-length 3 --rank-timeout 30 --out "${dir}/left.safetensors"
                RESULTS_VARIABLE codes OUTPUT_VARIABLE OUT ERROR_VARIABLE ERR TIMEOUT 120)
list(GET codes 1 rank0)
if(NOT rank0 STREQUAL "130" OR NOT ERR MATCHES "rank 0 of 2: .* failed \\(another rank stopped")
  message(FATAL_ERROR "rank 0 exited with ${rank0} (expected 130) after rank 1 left:\n${ERR}")
endif()
if(EXISTS "${dir}/left.safetensors")
  message(FATAL_ERROR "rank 0 wrote an artifact although the search did not finish")
endif()

# Alone in a group of two: gives up after --rank-timeout.
math(EXPR port "${port} + 1")
execute_process(COMMAND ${CMAKE_COMMAND} -E env WORLD_SIZE=2 RANK=0 MASTER_PORT=${port} ${CLI} ${SEARCH} --max-length 3
                        --rank-timeout 3 --out "${dir}/alone.safetensors"
                RESULT_VARIABLE RC OUTPUT_VARIABLE OUT ERROR_VARIABLE ERR TIMEOUT 60)
cc_expect_rc(130 "a rank whose peer never comes")
if(NOT ERR MATCHES "could not join the group")
  message(FATAL_ERROR "no clear error for a missing peer:\n${ERR}")
endif()
file(REMOVE_RECURSE "${dir}")
