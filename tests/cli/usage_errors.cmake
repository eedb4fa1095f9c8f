# Usage mistakes exit with 2 and say what is wrong; missing or corrupt inputs exit with 3
# and name the file; --help exits with 0.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)

cc_run(--help)
cc_expect_rc(0 "--help")
cc_run(generate --help)
cc_expect_rc(0 "generate --help")
if(NOT OUT MATCHES "--temperature")
  message(FATAL_ERROR "generate --help does not list --temperature:\n${OUT}")
endif()

cc_run(generate --model x.bin --no-such-flag)
cc_expect_rc(2 "unknown flag")
cc_run(generate)
cc_expect_rc(2 "missing --model")
cc_run(generate --model x.bin --temperature -1)
cc_expect_rc(2 "negative temperature")
cc_run(generate --model x.bin --steps abc)
cc_expect_rc(2 "non-numeric --steps")
cc_run(tokenize --tokenizer t --text a --bos maybe)
cc_expect_rc(2 "bad --bos")
cc_run(tokenize --tokenizer t)
cc_expect_rc(2 "neither --text nor --file")
cc_run(generate --model x.bin --device tpu)
cc_expect_rc(2 "bad --device")
cc_run(nosuchcommand)
cc_expect_rc(2 "unknown subcommand")

# Numeric flags say what they want, not the limits of a double: the run-config setting's
# own check and message (the same as in a config file), naming the flag.
foreach(bad "--seq-len;-1;'eval.seq_len' must be >= 0 (0: the model's context), got -1"
            "--max-windows;-3;'eval.max_windows' must be >= 0 (0: all), got -3"
            "--limit;abc;'eval.limit' must be an integer, got 'abc'"
            "--batch-size;0;'eval.batch_size' must be >= 1, got 0")
  list(GET bad 0 flag)
  list(GET bad 1 value)
  list(GET bad 2 expected)
  cc_run(eval --model x.bin ${flag} ${value})
  cc_expect_rc(2 "eval ${flag} ${value}")
  string(FIND "${ERR}" "${flag}: ${expected}" at)
  string(LENGTH "${ERR}" err_length)
  if(at EQUAL -1 OR err_length GREATER 200)
    message(FATAL_ERROR "eval ${flag} ${value}: expected '${flag}: ${expected}', got: ${ERR}")
  endif()
endforeach()

# The other commands' settings flags are run-config settings too: a value out of range gets
# the message a config file gets for that setting (prefix_commands.cmake checks the file's).
foreach(bad "search --model x.bin --out o;--tau;0;'search.tau' must be in (0, 1], got 0"
            "tune --model x.bin --prefix p --out o;--lr;0;'tuning.lr' must be > 0, got 0"
            "baseline --model x.bin --kind bos --out o;--samples;0;'prefixquant.samples' must be >= 1, got 0"
            "inspect --model x.bin;--seq-len;1;'inspect.seq_len' must be >= 2, got 1")
  list(GET bad 0 command)
  list(GET bad 1 flag)
  list(GET bad 2 value)
  list(GET bad 3 expected)
  separate_arguments(command)
  cc_run(${command} ${flag} ${value})
  cc_expect_rc(2 "${command} ${flag} ${value}")
  string(FIND "${ERR}" "${flag}: ${expected}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${command} ${flag} ${value}: expected '${flag}: ${expected}', got: ${ERR}")
  endif()
endforeach()

# An output that cannot be written is found before any work (the model here does not even
# exist: the output is checked first) and named, exit 3.
cc_run(inspect --model missing.bin --out /dev/null/inspect-out)
cc_expect_rc(3 "inspect into a folder that cannot be created")
if(NOT ERR MATCHES "--out /dev/null/inspect-out: cannot create the folder")
  message(FATAL_ERROR "the error does not name the output: ${ERR}")
endif()
cc_run(eval --model missing.bin --out /dev/null/results.json)
cc_expect_rc(3 "eval into a file that cannot be written")
if(NOT ERR MATCHES "--out /dev/null")
  message(FATAL_ERROR "the error does not name the output: ${ERR}")
endif()

set(dir "${CMAKE_CURRENT_BINARY_DIR}/usage_errors_tmp")
file(REMOVE_RECURSE "${dir}")
file(MAKE_DIRECTORY "${dir}")
cc_run(generate --model "${dir}/missing.bin" --tokenizer "${dir}/tok.bin")
cc_expect_rc(3 "missing model file")
if(NOT ERR MATCHES "missing.bin")
  message(FATAL_ERROR "the error does not name the missing file: ${ERR}")
endif()
file(WRITE "${dir}/corrupt.bin" "this is not a checkpoint at all")
cc_run(generate --model "${dir}/corrupt.bin" --tokenizer "${dir}/tok.bin")
cc_expect_rc(3 "corrupt model file")
if(NOT ERR MATCHES "corrupt.bin")
  message(FATAL_ERROR "the error does not name the corrupt file: ${ERR}")
endif()
file(REMOVE_RECURSE "${dir}")
