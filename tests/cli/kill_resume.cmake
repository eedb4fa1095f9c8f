# Search and tuning stopped mid-run and resumed with --resume end where an uninterrupted
# run ends: SIGKILL (no chance to save anything on the way out; the state written after
# every step is all a resume needs, and a kill never leaves it half-written) and SIGINT
# (a clean stop: state saved, exit code 130).
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

# stop_when.sh FILE PATTERN SIGNAL COMMAND...: starts COMMAND, sends SIGNAL as soon as
# FILE (a state file or checkpoint) matches PATTERN (grep -E), and exits with COMMAND's status;
# 99 if COMMAND ended before that.
file(WRITE "${dir}/stop_when.sh" [=[
file=$1; pattern=$2; signal=$3; shift 3
"$@" >/dev/null 2>&1 & pid=$!
until grep -aEq "$pattern" "$file" 2>/dev/null; do
  kill -0 $pid 2>/dev/null || exit 99
  sleep 0.05
done
kill -$signal $pid
wait $pid
]=])
function(stop_when file pattern signal expected_rc what)
  execute_process(COMMAND ${BASH} "${dir}/stop_when.sh" "${file}" "${pattern}" ${signal} ${CLI} ${ARGN} RESULT_VARIABLE rc)
  if(rc EQUAL 99)
    message(FATAL_ERROR "${what}: the run ended before it could be stopped")
  elseif(NOT rc EQUAL expected_rc)
    message(FATAL_ERROR "${what}: exit code ${rc}, expected ${expected_rc}")
  endif()
endfunction()

# --- search: tau 0.99 accepts nearly any token, so the search runs all its steps.
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

set(out "${dir}/killed.safetensors")
stop_when("${out}.search.json" [["step": 1]] KILL 137 "search, SIGKILL" ${search} --out "${out}")
file(READ "${out}.search.json" state)
string(JSON saved LENGTH "${state}" result steps)
# On a loaded machine the kill may land a step late; the resumed result must match anyway.
message("search killed with ${saved} of ${full_steps} steps saved")
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
# The artifact too, byte for byte: the same tokens, the same KV, the same metadata.
file(SHA256 "${dir}/full.safetensors" full_hash)
file(SHA256 "${out}" resumed_hash)
if(NOT resumed_hash STREQUAL full_hash)
  message(FATAL_ERROR "killed and resumed: the search artifact differs from the uninterrupted one")
endif()

# --- tune: 6 epochs of 4 steps (about 15 steps/s here), a checkpoint after every step. The tuned artifact of a
# stopped and resumed run must be the uninterrupted one byte for byte (same KV, same log:
# the checkpoint holds the Adam moments, and an epoch's order depends only on the seed).
set(tune tune --model "${MODEL}/stories260K.bin" --tokenizer "${MODEL}/tok512.bin" --prefix "${dir}/full.safetensors"
    --samples 16 --seq-len 256 --batch-size 4 --epochs 6 --checkpoint-every 1)
cc_run(${tune} --out "${dir}/tuned_full.safetensors")
cc_expect_rc(0 "uninterrupted tuning")
file(SHA256 "${dir}/tuned_full.safetensors" full_hash)

foreach(signal KILL INT)
  set(out "${dir}/tuned_${signal}.safetensors")
  if(signal STREQUAL "KILL")
    set(rc 137)
  else()
    set(rc 130)  # interrupted, state saved
  endif()
  # Stopped once step 2 or later is in the checkpoint (each checkpoint replaces the last).
  stop_when("${out}.checkpoint.safetensors" [["step":"([2-9]|1[0-9])"]] ${signal} ${rc} "tune, SIG${signal}" ${tune} --out "${out}")
  if(EXISTS "${out}")
    message(FATAL_ERROR "tune, SIG${signal}: the stopped run wrote its final artifact; it was not stopped mid-run")
  endif()
  cc_run(${tune} --resume --out "${out}")
  cc_expect_rc(0 "tune resumed after SIG${signal}")
  if(NOT ERR MATCHES "resuming prefix tuning at step ([0-9]+)")
    message(FATAL_ERROR "tune after SIG${signal} did not resume:\n${ERR}")
  endif()
  message("tune stopped with SIG${signal}, resumed at step ${CMAKE_MATCH_1} of 24")
  file(SHA256 "${out}" hash)
  if(NOT hash STREQUAL full_hash)
    message(FATAL_ERROR "tune stopped with SIG${signal} and resumed differs from the uninterrupted run")
  endif()
endforeach()
