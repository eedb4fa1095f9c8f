# `cushioncache train` on the shared C4 documents: a tiny byte-level model, stopped at
# step 6 and resumed to 10; the folder it writes is a model every other command loads
# (eval here), with the training record, curves and per-checkpoint probes.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
cc_require_file("${DATA}/text/c4/c4_validation_2k.jsonl")
cc_require_file("${DATA}/text/wikitext-2-raw/wiki.test.gptq.txt")
if(CC_SKIPPED)
  return()
endif()
set(work "${CMAKE_CURRENT_BINARY_DIR}/train_model_test")
file(REMOVE_RECURSE "${work}")
file(MAKE_DIRECTORY "${work}")
file(WRITE "${work}/train.yaml" "
output: ${work}/model
corpus: $data/text/c4/c4_validation_2k.jsonl
model: {hidden_size: 32, num_layers: 2, num_heads: 2, intermediate_size: 64}
optimizer: {lr: 0.01, min_lr: 0.001, warmup_steps: 2}
steps: 10
batch_size: 2
seq_len: 64
checkpoint_every: 3
probe: {samples: 1, seq_len: 64, ppl_windows: 2}
")
cc_run(train --config "${work}/train.yaml" --stop-at 6)
cc_expect_rc(0 "train --stop-at 6")
if(NOT OUT MATCHES "stopped at step 6 of 10" OR EXISTS "${work}/model/model.safetensors")
  message(FATAL_ERROR "the stopped run did not stop at step 6:\n${OUT}")
endif()
cc_run(train --config "${work}/train.yaml")
cc_expect_rc(2 "a second fresh run into a folder with checkpoints")
cc_run(train --config "${work}/train.yaml" --resume)
cc_expect_rc(0 "train --resume")
if(NOT OUT MATCHES "trained 10 steps" OR NOT OUT MATCHES "perplexity on [^ ]+: float [0-9.]+, w8a8-per-tensor-static [0-9.]+")
  message(FATAL_ERROR "unexpected summary:\n${OUT}")
endif()
foreach(f config.json model.safetensors tokenizer.json tokenizer_config.json training.json loss.svg sink_attention.svg
          massive_activation.svg checkpoints/step-000003/probe.json checkpoints/step-000006/inspect/stats.json
          checkpoints/step-000010/trainer_state.json)
  if(NOT EXISTS "${work}/model/${f}")
    message(FATAL_ERROR "train did not write ${f}")
  endif()
endforeach()
file(READ "${work}/model/training.json" json)
string(JSON probes LENGTH "${json}" probes)
string(JSON entries LENGTH "${json}" log)
if(NOT probes EQUAL 4 OR NOT entries EQUAL 1)
  message(FATAL_ERROR "training.json: ${probes} probes (expected steps 3, 6, 9, 10), ${entries} log entries (log_every 10)")
endif()
cc_run(eval --model "${work}/model" --ppl wikitext2 --max-windows 2 --seq-len 64)
cc_expect_rc(0 "eval on the trained model")
