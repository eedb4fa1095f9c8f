#include "cushioncache/pipeline/run_config.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <type_traits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cushioncache/core/data_dir.h"
#include "cushioncache/core/error.h"
#include "cushioncache/core/memory_usage.h"
#include "cushioncache/core/tensor_options.h"
#include "cushioncache/core/yaml_fields.h"
#include "cushioncache/quant/spec_yaml.h"
#include "cushioncache/kernels/int8_gemm.h"
#include "cushioncache/model/sites.h"
#include "cushioncache/quant/int8_linear.h"
#include "cushioncache/quant/recipe.h"

namespace cushioncache {
namespace {

// One value for one field and where it came from: a YAML file (errors name file:line) or
// an override (its nodes carry no position, so errors name "override KEY").
struct FieldValue {
  YAML::Node node;
  std::string source;
  std::string key;
  std::string where() const { return yaml_where(source, node); }
};

std::string shown(const YAML::Node& node) {
  if (node.IsScalar()) return node.Scalar();
  YAML::Emitter out;
  out << YAML::Flow << node;
  return out.c_str();
}

[[noreturn]] void reject(const FieldValue& v, const std::string& requirement) {
  throw_error(ErrorKind::kInvalidConfig, "{}: '{}' must be {}, got {}", v.where(), v.key, requirement, shown(v.node));
}

// A library check that throws its own message (a device name, a recipe, a byte size), put
// behind the field's location. A bad value is a config error (exit 2); a missing recipe
// file or a device this build cannot use keep their kinds.
template <typename Check>
auto checked_by(const FieldValue& v, Check&& check) {
  try {
    return check();
  } catch (const Error& e) {
    const ErrorKind kind = e.kind() == ErrorKind::kInvalidArgument ? ErrorKind::kInvalidConfig : e.kind();
    throw_error(kind, "{}: '{}': {}", v.where(), v.key, e.message());
  }
}

template <typename T>
T scalar(const FieldValue& v) {
  return yaml_scalar<T>(v.node, v.source, v.key);
}
template <typename T>
std::vector<T> list(const FieldValue& v) {
  return yaml_list<T>(v.node, v.source, v.key);
}

struct Field {
  std::string key, help, example, out_of_range;
  std::function<void(RunConfig&, const FieldValue&)> set;
  std::function<nlohmann::json(const RunConfig&)> get;
  // Fields of an optional section (planted_sink, search.candidates' frequent subset) exist
  // in the resolved config only when the section was given.
  std::function<bool(const RunConfig&)> present = nullptr;
};

// A scalar member, with an optional range check: `member` maps a config to the member.
template <typename T, typename Member>
Field value_field(std::string key, Member member, std::string help, std::string example, bool (*ok)(T) = nullptr,
                  std::string requirement = "", std::string out_of_range = "") {
  return {std::move(key), std::move(help), std::move(example), std::move(out_of_range),
          [member, ok, requirement](RunConfig& c, const FieldValue& v) {
            const T value = scalar<T>(v);
            if (ok != nullptr && !ok(value)) reject(v, requirement);
            member(c) = value;
          },
          [member](const RunConfig& c) { return nlohmann::json(member(const_cast<RunConfig&>(c))); }};
}

// An enum member, named in YAML by one of `choices`.
template <typename E, typename Member>
Field choice_field(std::string key, Member member, std::vector<std::pair<std::string, E>> choices, std::string help, std::string example) {
  std::string requirement = "one of ";
  for (std::size_t i = 0; i < choices.size(); ++i) requirement += (i ? ", " : "") + choices[i].first;
  return {std::move(key), std::move(help), std::move(example), "bogus",
          [member, choices, requirement](RunConfig& c, const FieldValue& v) {
            const std::string value = scalar<std::string>(v);
            const auto chosen = std::find_if(choices.begin(), choices.end(), [&](const auto& choice) { return choice.first == value; });
            if (chosen == choices.end()) reject(v, requirement);
            member(c) = chosen->second;
          },
          [member, choices](const RunConfig& c) {
            const E value = member(const_cast<RunConfig&>(c));
            const auto chosen = std::find_if(choices.begin(), choices.end(), [&](const auto& choice) { return choice.second == value; });
            return nlohmann::json(chosen->first);
          }};
}

// A string member that a library parser accepts (a device, a dtype, a recipe): its own
// message, behind the field's location.
template <typename Member>
Field parsed_text(std::string key, Member member, void (*parse)(const std::string&), std::string help, std::string example,
                  std::string out_of_range) {
  return {std::move(key), std::move(help), std::move(example), std::move(out_of_range),
          [member, parse](RunConfig& c, const FieldValue& v) {
            const std::string value = scalar<std::string>(v);
            checked_by(v, [&] { parse(value); });
            member(c) = value;
          },
          [member](const RunConfig& c) { return nlohmann::json(member(const_cast<RunConfig&>(c))); }};
}

// A list member of T.
template <typename T, typename Member>
Field list_field(std::string key, Member member, std::string help, std::string example) {
  return {std::move(key), std::move(help), std::move(example), "",
          [member](RunConfig& c, const FieldValue& v) { member(c) = list<T>(v); },
          [member](const RunConfig& c) { return nlohmann::json(member(const_cast<RunConfig&>(c))); }};
}

// An optional number that overrides something else when given.
template <typename Member>
Field optional_count(std::string key, Member member, std::int64_t minimum, std::string help, std::string example) {
  const std::string requirement = fmt::format(">= {}", minimum);
  return {std::move(key), std::move(help), std::move(example), std::to_string(minimum - 1),
          [member, minimum, requirement](RunConfig& c, const FieldValue& v) {
            const auto value = scalar<std::int64_t>(v);
            if (value < minimum) reject(v, requirement);
            member(c) = value;
          },
          [member](const RunConfig& c) {
            const auto& value = member(const_cast<RunConfig&>(c));
            return value ? nlohmann::json(*value) : nlohmann::json("recipe");
          }};
}

bool positive(std::int64_t v) { return v >= 1; }
bool at_least_two(std::int64_t v) { return v >= 2; }
bool non_negative(std::int64_t v) { return v >= 0; }
bool non_negative_real(double v) { return v >= 0; }
bool positive_real(double v) { return v > 0; }
bool fraction(double v) { return v > 0 && v <= 1; }
bool zero_or_two_plus(std::int64_t v) { return v == 0 || v >= 2; }
bool layer_index(int v) { return v >= 0; }

PlantedSinkOptions& planted(RunConfig& c) {
  if (!c.planted_sink) c.planted_sink.emplace();
  return *c.planted_sink;
}
FrequentCandidates& frequent(RunConfig& c) {
  if (!c.frequent_candidates) c.frequent_candidates.emplace();
  return *c.frequent_candidates;
}

// The three settings of an objective (search.objective, tuning.quant_error).
void add_objective_fields(std::vector<Field>& fields, const std::string& key, ObjectiveOptions& (*objective)(RunConfig&),
                          const std::string& what) {
  fields.push_back({key + ".kind", what + ": quant_error (the INT8 error of the activations) or max_abs", "max_abs", "bogus",
                    [objective](RunConfig& c, const FieldValue& v) {
                      const std::string kind = scalar<std::string>(v);
                      if (kind == "quant_error") objective(c).kind = ObjectiveKind::kQuantError;
                      else if (kind == "max_abs") objective(c).kind = ObjectiveKind::kMaxAbs;
                      else reject(v, "one of quant_error, max_abs");
                    },
                    [objective](const RunConfig& c) { return to_json(objective(const_cast<RunConfig&>(c)))["kind"]; }});
  fields.push_back({key + ".spec", what + ": the activation quantization it measures (short form or mapping)", "a8-per-token-dynamic-sym",
                    "a9-per-tensor-dynamic-sym",
                    [objective](RunConfig& c, const FieldValue& v) {
                      objective(c).spec = quant_spec_from_yaml(v.node, QuantRole::kActivation, v.source, v.key);
                    },
                    [objective](const RunConfig& c) { return to_json(objective(const_cast<RunConfig&>(c)))["spec"]; }});
  fields.push_back({key + ".sites", what + ": the activation sites it reads (block_input, attn_input, ...)", "[attn_input, mlp_input]", "[bogus]",
                    [objective](RunConfig& c, const FieldValue& v) {
                      std::vector<Site> sites;
                      for (const auto& name : list<std::string>(v)) sites.push_back(checked_by(v, [&] { return parse_site(name); }));
                      objective(c).sites = sites;
                    },
                    [objective](const RunConfig& c) { return to_json(objective(const_cast<RunConfig&>(c)))["sites"]; }});
}

const std::vector<Field>& fields() {
  static const std::vector<Field> table = [] {
    std::vector<Field> f;
    f.push_back(value_field<std::string>("name", [](RunConfig& c) -> auto& { return c.name; }, "the run's name (default: the file's stem)", "my-run"));
    f.push_back({"model", "the model: HF folder, .gguf, llama2.c .bin ($data/... is the shared data folder)", "$data/models/stories260K/stories260K.bin", "",
                 [](RunConfig& c, const FieldValue& v) { c.model = expand_data_path(scalar<std::string>(v)); },
                 [](const RunConfig& c) { return nlohmann::json(c.model); }});
    f.push_back({"tokenizer", "the tokenizer (default: found beside the model)", "$data/models/stories260K/tok512.bin", "",
                 [](RunConfig& c, const FieldValue& v) { c.tokenizer = expand_data_path(scalar<std::string>(v)); },
                 [](const RunConfig& c) { return nlohmann::json(c.tokenizer); }});
    f.push_back(parsed_text("device", [](RunConfig& c) -> auto& { return c.device; }, [](const std::string& v) { (void)parse_device(v); },
                            "cpu, cuda or cuda:N", "cpu:0", "tpu"));
    f.push_back(parsed_text("dtype", [](RunConfig& c) -> auto& { return c.dtype; },
                            [](const std::string& v) { if (v != "auto") (void)parse_float_dtype(v); },
                            "auto (float32 on CPU, bfloat16 on GPUs), float32, bfloat16 or float16", "bfloat16", "int3"));
    f.push_back(parsed_text("quant", [](RunConfig& c) -> auto& { return c.quant; }, [](const std::string& v) { (void)load_recipe(v); },
                            "the recipe the prefixes are searched, tuned and judged under (preset or .yaml)", "w8a8-per-tensor-dynamic",
                            "bogus-recipe"));
    f.push_back(choice_field<Execution>("exec", [](RunConfig& c) -> auto& { return c.exec; }, {{"fake", Execution::kFake}, {"int8", Execution::kInt8}},
                             "fake: fake quantization; int8: the quantized rows run on the INT8 kernels", "int8"));
    f.push_back({"also_quant", "more recipes every prefix is evaluated under (a column each in Table 1)", "[w8a8-per-token-dynamic]", "[float]",
                 [](RunConfig& c, const FieldValue& v) {
                   c.also_quant = list<std::string>(v);
                   for (const auto& name : c.also_quant) {
                     if (name == "float") reject(v, "a list of recipes (float is evaluated anyway)");
                     checked_by(v, [&] { return load_recipe(name); });
                   }
                 },
                 [](const RunConfig& c) { return nlohmann::json(c.also_quant); }});
    f.push_back({"baselines", "the baseline prefixes: bos, prefixquant", "[bos]", "[bogus]",
                 [](RunConfig& c, const FieldValue& v) {
                   c.baselines = list<std::string>(v);
                   for (const auto& b : c.baselines)
                     if (b != "bos" && b != "prefixquant") reject(v, "a list of bos, prefixquant");
                 },
                 [](const RunConfig& c) { return nlohmann::json(c.baselines); }});

    f.push_back(value_field<std::int64_t>("planted_sink.sink_token", [](RunConfig& c) -> auto& { return planted(c).sink_token; },
                                          "a planted attention sink: the token that carries it", "1"));
    f.push_back(list_field<std::int64_t>("planted_sink.trigger_tokens", [](RunConfig& c) -> auto& { return planted(c).trigger_tokens; },
                                         "a planted attention sink: the tokens whose activations get the outlier", "[13, 29]"));
    f.push_back(value_field<int>("planted_sink.from_layer", [](RunConfig& c) -> auto& { return planted(c).from_layer; },
                                 "a planted attention sink: the first layer it appears in", "2", &layer_index, ">= 0", "-1"));
    f.push_back(value_field<std::int64_t>("planted_sink.channel", [](RunConfig& c) -> auto& { return planted(c).channel; },
                                          "a planted attention sink: the residual channel of the outlier", "5"));
    f.push_back(value_field<double>("planted_sink.value", [](RunConfig& c) -> auto& { return planted(c).value; },
                                    "a planted attention sink: the outlier's value", "500"));

    f.push_back(list_field<std::string>("eval.ppl", [](RunConfig& c) -> auto& { return c.eval.corpora; },
                                        "perplexity corpora: wikitext2, c4 or text/JSONL paths", "[wikitext2, c4]"));
    f.push_back(list_field<std::string>("eval.tasks", [](RunConfig& c) -> auto& { return c.eval.tasks; },
                                        "zero-shot tasks: lambada, hellaswag, piqa, winogrande, openbookqa, copa, arc_easy, boolq, NAME=FILE, mc:FILE (eval: also all)", "[piqa]"));
    f.push_back(value_field<std::int64_t>("eval.seq_len", [](RunConfig& c) -> auto& { return c.eval.seq_len; },
                                          "perplexity window (0: min(2048, the model's context))", "128", &non_negative, ">= 0 (0: the model's context)", "-1"));
    f.push_back(value_field<std::int64_t>("eval.max_windows", [](RunConfig& c) -> auto& { return c.eval.max_windows; },
                                          "perplexity windows at most (0: all)", "3", &non_negative, ">= 0 (0: all)", "-1"));
    f.push_back(value_field<std::int64_t>("eval.limit", [](RunConfig& c) -> auto& { return c.eval.limit; }, "items per task (0: all)", "50",
                                          &non_negative, ">= 0 (0: all)", "-1"));
    f.push_back(value_field<std::int64_t>("eval.batch_size", [](RunConfig& c) -> auto& { return c.eval.task_batch_size; },
                                          "task requests per forward", "8", &positive, ">= 1", "0"));
    f.push_back(value_field<std::int64_t>("eval.ppl_batch_size", [](RunConfig& c) -> auto& { return c.eval.ppl_batch_size; },
                                          "perplexity windows per forward", "2", &positive, ">= 1", "0"));

    f.push_back(value_field<double>("prefixquant.threshold", [](RunConfig& c) -> auto& { return c.prefixquant.threshold; },
                                    "PrefixQuant baseline: a token is an outlier above this many times the median", "32", &positive_real, "> 0", "0"));
    f.push_back(value_field<std::string>("prefixquant.data", [](RunConfig& c) -> auto& { return c.prefixquant.windows.data; },
                                         "PrefixQuant baseline: the text it counts outliers on", "wikitext2"));
    f.push_back(value_field<std::int64_t>("prefixquant.samples", [](RunConfig& c) -> auto& { return c.prefixquant.windows.samples; },
                                          "PrefixQuant baseline: windows", "4", &positive, ">= 1", "0"));
    f.push_back(value_field<std::int64_t>("prefixquant.seq_len", [](RunConfig& c) -> auto& { return c.prefixquant.windows.seq_len; },
                                          "PrefixQuant baseline: tokens per window", "64", &at_least_two, ">= 2", "1"));
    f.push_back(value_field<std::uint64_t>("prefixquant.seed", [](RunConfig& c) -> auto& { return c.prefixquant.windows.seed; },
                                           "PrefixQuant baseline: the windows' seed", "7"));
    f.push_back(value_field<std::int64_t>("prefixquant.max_tokens", [](RunConfig& c) -> auto& { return c.prefixquant.max_tokens; },
                                          "PrefixQuant baseline: outlier tokens at most (BOS not counted)", "2", &positive, ">= 1", "0"));

    f.push_back({"search.seed_prefix", "what the search starts from: bos, none, or a list of token ids", "[1, 5]", "bogus",
                 [](RunConfig& c, const FieldValue& v) {
                   if (v.node.IsSequence()) {
                     c.search.seed_prefix = list<std::int64_t>(v);
                     c.search_seed = SearchSeed::kTokens;
                     return;
                   }
                   const std::string seed = scalar<std::string>(v);
                   if (seed != "bos" && seed != "none") reject(v, "bos, none or a list of token ids");
                   c.search_seed = seed == "bos" ? SearchSeed::kBos : SearchSeed::kNone;
                   c.search.seed_prefix.clear();
                 },
                 [](const RunConfig& c) {
                   switch (c.search_seed) {
                     case SearchSeed::kBos: return nlohmann::json("bos");
                     case SearchSeed::kNone: return nlohmann::json("none");
                     case SearchSeed::kTokens: break;
                   }
                   return nlohmann::json(c.search.seed_prefix);
                 }});
    f.push_back(value_field<std::int64_t>("search.max_length", [](RunConfig& c) -> auto& { return c.search.max_length; },
                                          "prefix length at most, seed included", "4", &positive, ">= 1", "0"));
    f.push_back(value_field<double>("search.tau", [](RunConfig& c) -> auto& { return c.search.tau; },
                                    "accept a token only if it lowers the objective below tau times the prefix's", "0.3", &fraction, "in (0, 1]", "0"));
    f.push_back(value_field<std::int64_t>("search.text_tokens", [](RunConfig& c) -> auto& { return c.search.text_tokens; },
                                          "calibration text per step (0: automatic)", "64", &zero_or_two_plus, ">= 2 (or 0: automatic)", "1"));
    f.push_back(value_field<std::string>("search.data", [](RunConfig& c) -> auto& { return c.search.data; }, "the search's calibration text", "wikitext2"));
    f.push_back(value_field<std::uint64_t>("search.seed", [](RunConfig& c) -> auto& { return c.search.seed; }, "the search texts' seed", "9"));
    f.push_back(value_field<std::int64_t>("search.batch_size", [](RunConfig& c) -> auto& { return c.search.batch_size; },
                                          "candidates per forward", "8", &positive, ">= 1", "0"));
    f.push_back({"search.max_memory", "bytes a candidate batch may use (e.g. 4GiB; 0: no bound)", "2GiB", "lots",
                 [](RunConfig& c, const FieldValue& v) {
                   const std::string text = scalar<std::string>(v);
                   c.search.max_memory = checked_by(v, [&] { return parse_byte_size(text, "the size"); });
                 },
                 [](const RunConfig& c) { return nlohmann::json(c.search.max_memory); }});
    f.push_back(value_field<bool>("search.prune", [](RunConfig& c) -> auto& { return c.search.prune; },
                                  "prune candidates between blocks (false: the exhaustive reference)", "false"));
    f.push_back({"search.candidates", "token ids the search may pick (default: the vocabulary), or {frequent: N, ...}", "[3, 4, 5]", "",
                 [](RunConfig& c, const FieldValue& v) {
                   c.search.candidates = list<std::int64_t>(v);
                   c.frequent_candidates.reset();
                 },
                 [](const RunConfig& c) { return nlohmann::json(c.search.candidates); }});
    f.push_back(value_field<std::int64_t>("search.candidates.frequent", [](RunConfig& c) -> auto& { return frequent(c).count; },
                                          "candidates: the N most frequent tokens of sampled text (+ delimiters)", "64", &positive, ">= 1", "0"));
    f.push_back(value_field<std::string>("search.candidates.data", [](RunConfig& c) -> auto& { return frequent(c).text.data; },
                                         "candidates: the text they are counted on", "wikitext2"));
    f.push_back(value_field<std::int64_t>("search.candidates.samples", [](RunConfig& c) -> auto& { return frequent(c).text.samples; },
                                          "candidates: windows sampled", "8", &positive, ">= 1", "0"));
    f.push_back(value_field<std::int64_t>("search.candidates.seq_len", [](RunConfig& c) -> auto& { return frequent(c).text.seq_len; },
                                          "candidates: tokens per window", "128", &at_least_two, ">= 2", "1"));
    f.push_back(value_field<std::uint64_t>("search.candidates.seed", [](RunConfig& c) -> auto& { return frequent(c).text.seed; },
                                           "candidates: the windows' seed", "3"));
    f.push_back(value_field<bool>("search.candidates.delimiters", [](RunConfig& c) -> auto& { return frequent(c).delimiters; },
                                  "candidates: add the delimiter tokens", "false"));
    add_objective_fields(f, "search.objective", [](RunConfig& c) -> ObjectiveOptions& { return c.search.objective; }, "the search's objective");

    f.push_back(value_field<bool>("tuning.enabled", [](RunConfig& c) -> auto& { return c.tuning_enabled; }, "tune the searched prefix", "false"));
    f.push_back(value_field<double>("tuning.lambda", [](RunConfig& c) -> auto& { return c.tuning.lambda; },
                                    "weight of the quantization error in the loss", "0.1", &non_negative_real, ">= 0", "-1"));
    f.push_back(value_field<double>("tuning.lr", [](RunConfig& c) -> auto& { return c.tuning.lr; }, "Adam's learning rate", "0.01",
                                    &positive_real, "> 0", "0"));
    f.push_back(value_field<std::int64_t>("tuning.epochs", [](RunConfig& c) -> auto& { return c.tuning.epochs; }, "passes over the windows", "1",
                                          &positive, ">= 1", "0"));
    f.push_back(value_field<std::int64_t>("tuning.batch_size", [](RunConfig& c) -> auto& { return c.tuning.batch_size; }, "windows per step", "2",
                                          &positive, ">= 1", "0"));
    f.push_back(value_field<std::int64_t>("tuning.seq_len", [](RunConfig& c) -> auto& { return c.tuning.windows.seq_len; },
                                          "tokens per window (capped by the context after the prefix)", "128", &at_least_two, ">= 2", "1"));
    f.push_back(value_field<std::int64_t>("tuning.samples", [](RunConfig& c) -> auto& { return c.tuning.windows.samples; }, "training windows", "8",
                                          &positive, ">= 1", "0"));
    f.push_back(value_field<std::string>("tuning.data", [](RunConfig& c) -> auto& { return c.tuning.windows.data; }, "the training text", "wikitext2"));
    f.push_back(value_field<std::uint64_t>("tuning.seed", [](RunConfig& c) -> auto& { return c.tuning.windows.seed; }, "the windows' seed", "4"));
    f.push_back(value_field<double>("tuning.grad_clip", [](RunConfig& c) -> auto& { return c.tuning.grad_clip; },
                                    "clip the global gradient norm (0: off)", "0.5", &non_negative_real, ">= 0 (0: off)", "-1"));
    f.push_back(value_field<std::int64_t>("tuning.checkpoint_every", [](RunConfig& c) -> auto& { return c.tuning.checkpoint_every; },
                                          "steps between tuning checkpoints (also saved when stopped and at the end)", "5", &positive,
                                          ">= 1", "0"));
    add_objective_fields(f, "tuning.quant_error", [](RunConfig& c) -> ObjectiveOptions& { return c.tuning.quant_error; },
                         "the tuning loss's quantization error");

    f.push_back(choice_field<CalibrationBos>("calibration.include_bos", [](RunConfig& c) -> auto& { return c.calibration_include_bos; },
                             {{"recipe", CalibrationBos::kRecipe}, {"true", CalibrationBos::kCounted},
                              {"false", CalibrationBos::kNotCounted}, {"both", CalibrationBos::kBoth}},
                             "count the calibration windows' BOS in the ranges: recipe, true, false, or both (two rows)", "both"));
    f.push_back(optional_count("calibration.samples", [](RunConfig& c) -> auto& { return c.calibration_samples; }, 1,
                               "calibration windows, for every recipe (default: the recipe's)", "16"));
    f.push_back(optional_count("calibration.seq_len", [](RunConfig& c) -> auto& { return c.calibration_seq_len; }, 2,
                               "calibration tokens per window, for every recipe (default: the recipe's)", "128"));

    f.push_back(value_field<std::int64_t>("inspect.samples", [](RunConfig& c) -> auto& { return c.inspect.samples; },
                                          "windows the before/after plots are drawn from", "2", &positive, ">= 1", "0"));
    f.push_back(value_field<std::int64_t>("inspect.seq_len", [](RunConfig& c) -> auto& { return c.inspect.seq_len; },
                                          "tokens per window of the plots", "64", &at_least_two, ">= 2", "1"));
    f.push_back(value_field<std::string>("inspect.data", [](RunConfig& c) -> auto& { return c.inspect.data; }, "the plots' text", "c4"));
    f.push_back(value_field<std::uint64_t>("inspect.seed", [](RunConfig& c) -> auto& { return c.inspect.seed; }, "the plots' windows' seed", "3"));
    // The optional sections' fields exist in the resolved config only when given.
    for (Field& field : f) {
      if (field.key.rfind("planted_sink.", 0) == 0) field.present = [](const RunConfig& c) { return c.planted_sink.has_value(); };
      if (field.key.rfind("search.candidates.", 0) == 0) field.present = [](const RunConfig& c) { return c.frequent_candidates.has_value(); };
    }
    return f;
  }();
  return table;
}

const Field* find_field(const std::string& key) {
  for (const Field& f : fields())
    if (f.key == key) return &f;
  return nullptr;
}

bool is_section(const std::string& key) {
  const std::string prefix = key + ".";
  return std::any_of(fields().begin(), fields().end(), [&](const Field& f) { return f.key.compare(0, prefix.size(), prefix) == 0; });
}

// Where each key was set (for the checks across fields) and in which order.
using Applied = std::map<std::string, std::string>;

void apply(RunConfig& c, const FieldValue& v, Applied& applied);

// A mapping of keys under `v.key` (the document when empty).
void apply_mapping(RunConfig& c, const FieldValue& v, Applied& applied) {
  if (!v.node.IsMap())
    throw_error(ErrorKind::kInvalidConfig, "{}: '{}' must be a mapping of keys to values", v.where(), v.key.empty() ? "the document" : v.key);
  for (const auto& item : v.node) {
    const std::string name = item.first.IsScalar() ? item.first.Scalar() : shown(item.first);
    apply(c, FieldValue{item.second, v.source, v.key.empty() ? name : v.key + "." + name}, applied);
  }
}

void apply(RunConfig& c, const FieldValue& v, Applied& applied) {
  const Field* field = find_field(v.key);
  if (is_section(v.key) && (v.node.IsMap() || field == nullptr)) {
    if (v.node.IsNull()) return;  // "eval:" with nothing under it: the defaults
    apply_mapping(c, v, applied);
    return;
  }
  if (field == nullptr) throw_error(ErrorKind::kInvalidConfig, "{}: unknown key '{}'", v.where(), v.key);
  if (v.node.IsNull()) return;  // "key:" with no value: the default
  field->set(c, v);
  applied[v.key] = v.where();
}

// An override's value as YAML, without positions (so its errors name the override).
YAML::Node without_marks(const YAML::Node& node) {
  if (node.IsScalar()) return YAML::Node(node.Scalar());
  YAML::Node out;
  if (node.IsSequence()) {
    out = YAML::Node(YAML::NodeType::Sequence);
    for (const auto& item : node) out.push_back(without_marks(item));
  } else if (node.IsMap()) {
    out = YAML::Node(YAML::NodeType::Map);
    for (const auto& item : node) out[item.first.Scalar()] = without_marks(item.second);
  }
  return out;
}

// `value` (YAML text) for `key`, its errors naming `source`.
void apply_text(RunConfig& c, const std::string& key, const std::string& value, const std::string& source, Applied& applied) {
  if (find_field(key) == nullptr && !is_section(key)) throw_error(ErrorKind::kInvalidConfig, "{}: unknown key '{}'", source, key);
  YAML::Node node;
  try {
    node = without_marks(YAML::Load(value));
  } catch (const YAML::Exception& e) {
    throw_error(ErrorKind::kInvalidConfig, "{}: '{}' is not a YAML value: {}", source, value, e.msg);
  }
  if (node.IsNull()) throw_error(ErrorKind::kInvalidConfig, "{}: no value", source);
  apply(c, FieldValue{node, source, key}, applied);
}

void apply_override(RunConfig& c, const std::string& text, Applied& applied) {
  const auto equals = text.find('=');
  if (equals == std::string::npos || equals == 0)
    throw_error(ErrorKind::kInvalidConfig, "override '{}': expected KEY=VALUE (e.g. search.tau=0.3)", text);
  const std::string key = text.substr(0, equals);
  apply_text(c, key, text.substr(equals + 1), "override " + key, applied);
}

// The checks that span fields, after every value is in.
void check_across_fields(const RunConfig& c, const std::string& path, const Applied& applied) {
  const auto where = [&](const std::string& key) {
    const auto it = applied.find(key);
    return it == applied.end() ? path : it->second;
  };
  if (c.model.empty()) throw_error(ErrorKind::kInvalidConfig, "{}: missing key 'model'", path);
  if (c.planted_sink)
    for (const char* key : {"planted_sink.sink_token", "planted_sink.trigger_tokens"})
      if (!applied.count(key)) throw_error(ErrorKind::kInvalidConfig, "{}: missing key '{}' (a planted sink needs it)", where("planted_sink"), key);
  std::vector<std::string> recipes = {c.quant};
  for (const auto& name : c.also_quant) {
    if (std::find(recipes.begin(), recipes.end(), name) != recipes.end())
      throw_error(ErrorKind::kInvalidConfig, "{}: 'also_quant' repeats '{}' (or names 'quant' again)", where("also_quant"), name);
    recipes.push_back(name);
  }
  if (c.exec != Execution::kInt8) return;
  for (const auto& name : recipes) {
    const QuantRecipe recipe = load_recipe(name);
    // Before any work: a recipe the INT8 kernels cannot run would fail hours in.
    if (const std::string why = int8_execution_blocker(recipe.weights, recipe.activations, recipe.quantizer); !why.empty())
      throw_error(ErrorKind::kUnsupported, "{}: 'exec' is int8, but recipe '{}' cannot run on the INT8 kernels: {}", where("exec"), recipe.name, why);
  }
  if (!kernels::cpu_int8_gemm_available())
    throw_error(ErrorKind::kUnsupported, "{}: 'exec' is int8, which needs oneDNN (libdnnl-dev); this build was configured without it", where("exec"));
}

void set_json(nlohmann::json& root, const std::string& key, nlohmann::json value) {
  nlohmann::json* node = &root;
  std::size_t start = 0;
  while (true) {
    const auto dot = key.find('.', start);
    const std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (dot == std::string::npos) {
      (*node)[part] = std::move(value);
      return;
    }
    // A list-valued field with sub-fields (search.candidates): the list moves under "ids".
    if (node->contains(part) && !(*node)[part].is_object()) (*node)[part] = nlohmann::json{{"ids", (*node)[part]}};
    node = &(*node)[part];
    start = dot + 1;
  }
}

}  // namespace

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  const YAML::Node root = load_yaml_file(path);
  RunConfig c;
  c.name = std::filesystem::path(path).stem().string();
  c.eval.corpora = {"wikitext2"};
  Applied applied;
  if (!root.IsNull()) apply_mapping(c, FieldValue{root, path, ""}, applied);
  for (const auto& text : overrides) apply_override(c, text, applied);
  check_across_fields(c, path, applied);
  return c;
}

nlohmann::json to_json(const RunConfig& c) {
  nlohmann::json j = nlohmann::json::object();
  for (const Field& f : fields())
    if (f.present == nullptr || f.present(c)) set_json(j, f.key, f.get(c));
  return j;
}

void set_run_config_value(RunConfig& config, const std::string& key, const std::string& value, const std::string& source) {
  Applied applied;
  apply_text(config, key, value, source, applied);
}

nlohmann::json run_config_value(const RunConfig& config, const std::string& key) {
  const Field* field = find_field(key);
  if (field == nullptr) throw_error(ErrorKind::kInvalidArgument, "unknown run-config key '{}'", key);
  if (field->present != nullptr && !field->present(config)) return nullptr;  // an optional section not given
  return field->get(config);
}

std::vector<RunConfigSetting> run_config_settings() {
  std::vector<RunConfigSetting> out;
  for (const Field& f : fields()) out.push_back({f.key, f.help, f.example, f.out_of_range});
  return out;
}

}  // namespace cushioncache
