# --dist-backend: a backend that cannot run here (NCCL without a CUDA build, for a CPU
# rank, or without a GPU; Gloo without its headers) exits with 4 (unsupported) and says
# why before any rank waits for the others; a backend name that does not exist is a usage
# error (2). Needs no data: the group is joined before the model is read.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)

function(run_as_rank_one)
  execute_process(COMMAND ${CMAKE_COMMAND} -E env WORLD_SIZE=2 RANK=1 MASTER_PORT=1 ${CLI} ${ARGN}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(RC "${rc}" PARENT_SCOPE)
  set(OUT "${out}" PARENT_SCOPE)
  set(ERR "${err}" PARENT_SCOPE)
endfunction()

set(SEARCH search --model not-read.bin --out not-written.safetensors --rank-timeout 5)
run_as_rank_one(${SEARCH} --dist-backend nccl --device cpu)
cc_expect_rc(4 "--dist-backend nccl on a CPU rank")
if(CC_HAVE_NCCL)
  set(why "this rank's device is cpu")
else()
  set(why "needs a CUDA-enabled LibTorch")
endif()
string(FIND "${ERR}" "over nccl" at_backend)
string(FIND "${ERR}" "${why}" at_reason)
if(at_backend EQUAL -1 OR at_reason EQUAL -1)
  message(FATAL_ERROR "--dist-backend nccl on a CPU rank: the message does not say '${why}':\n${ERR}")
endif()

run_as_rank_one(${SEARCH} --dist-backend mpi)
cc_expect_rc(2 "--dist-backend mpi")
