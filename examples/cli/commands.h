// The subcommands of the `cushioncache` CLI and the flags they share.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cushioncache/artifact/artifact.h"
#include "cushioncache/distributed/process_group.h"
#include "cushioncache/model/loader.h"
#include "cushioncache/pipeline/run_config.h"
#include "cushioncache/tokenizer/tokenizer.h"

namespace cushioncache::cli {

// Checks for numeric flags. CLI11's PositiveNumber and NonNegativeNumber print the limits
// of a double ("Value 0 not in range 0.000000 to 17976931348623157..."); these say what is
// wanted: "--seq-len: must be a number > 0, not '0'".
CLI::Validator positive();
CLI::Validator non_negative();

// --model, --tokenizer, --device and --dtype, shared by every command that loads a model.
struct ModelFlags {
  std::string model, tokenizer;
  std::string device = "cpu";
  std::string dtype = "auto";
  bool stream_blocks = false;
  std::string max_gpu_memory;  // empty: no budget

  void add_to(CLI::App& command, bool with_tokenizer);
  std::unique_ptr<CausalLM> load_model() const;
  // --tokenizer, or the tokenizer that lives beside the model.
  std::unique_ptr<Tokenizer> load_tokenizer() const;
};

// --prefix ARTIFACT (checked against the model) or --prefix-text TEXT (BOS + TEXT, its KV
// computed by the model, which must still be float); nullopt when neither is given.
std::optional<Artifact> load_prefix_flags(CausalLM& float_model, const Tokenizer& tokenizer, const std::string& artifact,
                                          const std::string* prefix_text);
std::string describe_prefix(const Artifact& prefix, const Tokenizer& tokenizer);

// Runs `work`; an error about the device memory budget (which the library names as such)
// is prefixed with the flag that set it: "--max-gpu-memory 1K: the device memory budget ...".
void naming_budget_flag(const std::string& max_gpu_memory, const std::function<void()>& work);

// Command-line flags for run-config settings (pipeline/run_config.h), so that a setting
// is one thing everywhere: a flag's help comes from its setting's table entry, its
// default from `defaults` (the command's), and its value goes through the same check as
// in a config file or a --set override, with the same message, naming the flag
// ("--tau: 'search.tau' must be in (0, 1], got 0", exit 2).
class SettingFlags {
 public:
  SettingFlags() = default;  // the run config's defaults
  explicit SettingFlags(RunConfig defaults) : defaults_(std::move(defaults)) {}
  // --FLAG VALUE for the setting `key`.
  void add(CLI::App& command, const std::string& flag, const std::string& key);
  // --FLAG A,B,C (or repeated) for a list setting.
  void add_list(CLI::App& command, const std::string& flag, const std::string& key);
  // --FLAG without a value: the setting takes `value` (YAML) when the flag is given.
  void add_switch(CLI::App& command, const std::string& flag, const std::string& key, const std::string& value, const std::string& help);
  // The defaults with every flag given applied, in the order they were added.
  RunConfig resolve() const;

 private:
  struct Flag {
    std::string name, key, switch_value;
    std::vector<std::string> values;  // as given (one for a scalar)
    bool list = false, given = false;
  };
  Flag& added(const std::string& flag, const std::string& key);
  std::string help(const std::string& key) const;

  RunConfig defaults_;
  std::vector<std::unique_ptr<Flag>> flags_;  // stable addresses: CLI11 writes into them
};

// Token ids as the flag `flag` takes them: "1 5 9" or "1,5,9"; kInvalidArgument naming the
// flag for a word that is not an integer.
std::vector<std::int64_t> parse_token_ids(std::string text, const std::string& flag);

// --rank-timeout and --dist-backend, for the commands that run as several processes.
struct RankFlags {
  int timeout_seconds = 300;
  std::string backend = "auto";

  void add_to(CLI::App& command);
};
// The ranks this process runs with (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT from
// scripts/launch_ranks.sh or torchrun; alone without them), over the backend the flags
// name for the device `model` runs on. Ranks other than 0 log warnings only, and rank 0
// alone writes files.
std::unique_ptr<ProcessGroup> join_ranks(const RankFlags& ranks, const ModelFlags& model);

void add_generate_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_logits_command(CLI::App& app);
void add_convert_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_search_command(CLI::App& app);
void add_tune_command(CLI::App& app);
void add_baseline_command(CLI::App& app);
void add_run_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_plan_memory_command(CLI::App& app);

}  // namespace cushioncache::cli
