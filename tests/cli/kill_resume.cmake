# A search killed with SIGKILL (no chance to save anything on the way out) and resumed
# with --resume ends with the prefix an uninterrupted search finds: the state file
# written after every step is all a resume needs, and a kill never leaves it half-written.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
set(MODEL "${DATA}/models/stories260K")
cc_require_file("${MODEL}/stories260K.bin")
cc_require_file("${DATA}/text/c4/c4_validation_2k.jsonl")
if(CC_SKIPPED)
  return()
endif()
find_program(BASH bash REQUIRED)
set(dir "${CMAKE_CURRENT_BINARY_DIR}/kill_resume_test")
file(REMOVE_RECURSE "${dir}")
file(MAKE_DIRECTORY "${dir}")
# tau 0.99 accepts nearly any token, so the search runs all its steps.
set(search search --model "${MODEL}/stories260K.bin" --tokenizer "${MODEL}/tok512.bin" --max-length 4 --tau 0.99
    --text-tokens 256)

cc_run(${search} --out "${dir}/full.safetensors")
cc_expect_rc(0 "uninterrupted search")
file(READ "${dir}/full.safetensors.search.json" full)
string(JSON full_prefix GET "${full}" result prefix)
string(JSON full_steps LENGTH "${full}" result steps)
if(full_steps LESS 3)
  message(FATAL_ERROR "the uninterrupted search ran ${full_steps} step(s); the test needs three")
endif()

# Killed (SIGKILL) as soon as the first step is in the state file, then resumed.
set(out "${dir}/killed.safetensors")
file(WRITE "${dir}/kill_after_first_step.sh" [=[
state=$1; shift
"$@" >/dev/null 2>&1 & pid=$!
until grep -q '"step": 1' "$state" 2>/dev/null; do
  kill -0 $pid 2>/dev/null || exit 3
  sleep 0.1
done
kill -KILL $pid
wait $pid
exit 0
]=])
execute_process(COMMAND ${BASH} "${dir}/kill_after_first_step.sh" "${out}.search.json" ${CLI} ${search} --out "${out}"
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the search ended before its first step was saved (${rc})")
endif()
file(READ "${out}.search.json" state)
string(JSON saved LENGTH "${state}" result steps)
# On a loaded machine the kill may land a step late; the resumed result must match anyway.
message("killed with ${saved} of ${full_steps} steps saved")
cc_run(${search} --resume --out "${out}")
cc_expect_rc(0 "resumed search")
if(NOT ERR MATCHES "resum")
  message(FATAL_ERROR "the second run did not say it resumed:\n${ERR}")
endif()
file(READ "${out}.search.json" resumed)
string(JSON resumed_prefix GET "${resumed}" result prefix)
if(NOT resumed_prefix STREQUAL full_prefix)
  message(FATAL_ERROR "killed and resumed: prefix ${resumed_prefix}, uninterrupted ${full_prefix}")
endif()
