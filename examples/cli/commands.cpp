#include "commands.h"

#include <chrono>
#include <sstream>
#include <stdexcept>

#include "cushioncache/core/error.h"
#include "cushioncache/core/log.h"
#include "cushioncache/core/memory_usage.h"
#include "cushioncache/core/tensor_options.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace cushioncache::cli {
namespace {

CLI::Validator sign_check(bool zero_allowed) {
  const std::string wanted = zero_allowed ? ">= 0" : "> 0";
  return CLI::Validator(
      [zero_allowed, wanted](std::string& text) -> std::string {
        std::size_t used = 0;
        double value = 0;
        try {
          value = std::stod(text, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == 0 || used != text.size()) return fmt::format("must be a number {}, not '{}'", wanted, text);
        if (value > 0 || (zero_allowed && value == 0)) return {};
        return fmt::format("must be {}, not '{}'", wanted, text);
      },
      wanted);
}

// A scalar as a YAML double-quoted string: the table's readers convert it to the field's
// type, and text with ':' or '#' in it (a path, a task spec) stays one scalar.
std::string yaml_quoted(const std::string& text) {
  std::string out = "\"";
  for (char ch : text) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "\"";
}

}  // namespace

SettingFlags::Flag& SettingFlags::added(const std::string& flag, const std::string& key) {
  flags_.push_back(std::make_unique<Flag>());
  flags_.back()->name = flag;
  flags_.back()->key = key;
  return *flags_.back();
}

std::string SettingFlags::help(const std::string& key) const {
  for (const RunConfigSetting& s : run_config_settings())
    if (s.key == key) return fmt::format("{} (setting {})", s.help, key);
  throw_error(ErrorKind::kInternal, "no run-config setting '{}'", key);
}

void SettingFlags::add(CLI::App& command, const std::string& flag, const std::string& key) {
  Flag& f = added(flag, key);
  const nlohmann::json value = run_config_value(defaults_, key);
  command.add_option(flag, f.values, help(key))->expected(1)->default_str(value.is_string() ? value.get<std::string>() : value.dump())
      ->each([&f](const std::string&) { f.given = true; });
}

void SettingFlags::add_list(CLI::App& command, const std::string& flag, const std::string& key) {
  Flag& f = added(flag, key);
  f.list = true;
  command.add_option(flag, f.values, help(key))->delimiter(',')->each([&f](const std::string&) { f.given = true; });
}

void SettingFlags::add_switch(CLI::App& command, const std::string& flag, const std::string& key, const std::string& value,
                              const std::string& help_text) {
  Flag& f = added(flag, key);
  f.switch_value = value;
  command.add_flag_callback(flag, [&f] { f.given = true; }, help_text);
}

RunConfig SettingFlags::resolve() const {
  RunConfig config = defaults_;
  for (const auto& f : flags_) {
    if (!f->given) continue;
    std::string yaml = f->switch_value;
    if (yaml.empty() && f->list) {
      yaml = "[";
      for (std::size_t i = 0; i < f->values.size(); ++i) yaml += (i ? ", " : "") + yaml_quoted(f->values[i]);
      yaml += "]";
    } else if (yaml.empty()) {
      yaml = yaml_quoted(f->values.back());
    }
    set_run_config_value(config, f->key, yaml, f->name);
  }
  return config;
}

CLI::Validator positive() { return sign_check(false); }
CLI::Validator non_negative() { return sign_check(true); }

void ModelFlags::add_to(CLI::App& command, bool with_tokenizer) {
  command.add_option("--model", model, "Hugging Face model folder, llama.cpp .gguf file or llama2.c .bin")->required();
  if (with_tokenizer)
    command.add_option("--tokenizer", tokenizer,
                       "tokenizer folder, tokenizer.json, .gguf file or llama2.c tok*.bin (default: beside the model, or the .gguf model itself)");
  command.add_option("--device", device, "cpu, cuda or cuda:N")->capture_default_str();
  command.add_option("--dtype", dtype, "auto (float32 on CPU, the checkpoint's dtype on CUDA), float32, bfloat16, float16")
      ->capture_default_str();
  command.add_flag("--stream-blocks", stream_blocks,
                   "keep the blocks' weights in host memory and copy each to the device only while it runs (models larger than the GPU)");
  command.add_option("--max-gpu-memory", max_gpu_memory,
                     "device memory the weights may take, e.g. 40GiB: the first blocks stay resident, the rest stream (implies "
                     "--stream-blocks when the model does not fit)");
}

void RankFlags::add_to(CLI::App& command) {
  command.add_option("--rank-timeout", timeout_seconds, "seconds a rank waits for the others when WORLD_SIZE > 1 (scripts/launch_ranks.sh, torchrun)")
      ->capture_default_str()->check(positive());
  command.add_option("--dist-backend", backend, "collectives between ranks: nccl (GPUs, CUDA build), gloo, or auto (nccl for a CUDA device where "
                     "this build has it, else gloo)")
      ->capture_default_str()->check(CLI::IsMember({"auto", "gloo", "nccl"}));
}

std::unique_ptr<ProcessGroup> join_ranks(const RankFlags& ranks, const ModelFlags& model) {
  auto group = process_group_from_environment(std::chrono::seconds(ranks.timeout_seconds), parse_dist_backend(ranks.backend),
                                              device_for_rank(parse_device(model.device)));
  if (!group->is_leader()) log::set_level(log::Level::kWarn);
  return group;
}

std::unique_ptr<CausalLM> ModelFlags::load_model() const {
  LoadOptions options;
  options.device = device_for_rank(parse_device(device));
  if (dtype != "auto") options.dtype = parse_float_dtype(dtype);
  options.stream_blocks = stream_blocks;
  if (!max_gpu_memory.empty()) options.max_device_bytes = parse_byte_size(max_gpu_memory, "--max-gpu-memory");
  std::unique_ptr<CausalLM> loaded;
  naming_budget_flag(max_gpu_memory, [&] { loaded = cushioncache::load_model(model, options); });
  return loaded;
}

void naming_budget_flag(const std::string& max_gpu_memory, const std::function<void()>& work) {
  try {
    work();
  } catch (Error& e) {
    if (e.kind() == ErrorKind::kInvalidArgument && e.message().find("the device memory budget") != std::string::npos)
      e.add_context("--max-gpu-memory " + max_gpu_memory);
    throw;
  }
}

std::unique_ptr<Tokenizer> ModelFlags::load_tokenizer() const {
  std::filesystem::path path = tokenizer;
  if (path.empty()) {
    auto found = default_tokenizer_path(model);
    if (!found) throw_error(ErrorKind::kNotFound, "no tokenizer found beside {}; pass --tokenizer", model);
    path = *found;
  }
  auto loaded_tokenizer = cushioncache::load_tokenizer(path);
  log::debug("tokenizer {}", loaded_tokenizer->describe());
  return loaded_tokenizer;
}

std::optional<Artifact> load_prefix_flags(CausalLM& float_model, const Tokenizer& tokenizer, const std::string& artifact,
                                          const std::string* prefix_text) {
  if (!artifact.empty() && prefix_text != nullptr)
    throw_error(ErrorKind::kInvalidArgument, "--prefix and --prefix-text exclude each other");
  if (artifact.empty() && prefix_text == nullptr) return std::nullopt;
  if (!artifact.empty()) return load_artifact(artifact, float_model);
  return make_token_artifact(float_model, "text", tokenizer.encode(*prefix_text, BosPolicy::kYes));
}

std::vector<std::int64_t> parse_token_ids(std::string text, const std::string& flag) {
  for (char& ch : text)
    if (ch == ',') ch = ' ';
  std::istringstream in(text);
  std::vector<std::int64_t> ids;
  std::string word;
  while (in >> word) {
    try {
      std::size_t used = 0;
      ids.push_back(std::stoll(word, &used));
      if (used != word.size()) throw std::invalid_argument(word);
    } catch (const std::exception&) {
      throw_error(ErrorKind::kInvalidArgument, "{}: '{}' is not a token id", flag, word);
    }
  }
  return ids;
}

std::string describe_prefix(const Artifact& prefix, const Tokenizer& tokenizer) {
  return fmt::format("{} prefix of {} token{}: {}", prefix.kind, prefix.tokens.size(), prefix.tokens.size() == 1 ? "" : "s", describe_tokens(tokenizer, prefix.tokens));
}

}  // namespace cushioncache::cli
