#include "cushioncache/eval/tasks.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cushioncache/core/data_dir.h"
#include "cushioncache/core/error.h"
#include "cushioncache/core/strings.h"
#include "cushioncache/core/files.h"
#include "cushioncache/io/json_file.h"

namespace cushioncache {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kDelimiter = " ";  // the harness's default target_delimiter

std::string strip(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t\n\r\f\v");
  if (begin == std::string::npos) return "";
  const auto end = s.find_last_not_of(" \t\n\r\f\v");
  return s.substr(begin, end - begin + 1);
}

// A multiple-choice item whose choices all continue one context.
TaskItem shared_context(const std::string& context, const std::vector<std::string>& choices, std::int64_t gold) {
  TaskItem item;
  for (const auto& c : choices) item.requests.push_back({context, kDelimiter + c});
  item.choices = choices;
  item.gold = gold;
  return item;
}

// WinoGrande's "partial evaluation": the choices differ in the context, the scored
// continuation is shared.
TaskItem shared_continuation(const std::vector<std::string>& contexts, const std::string& continuation, std::int64_t gold) {
  TaskItem item;
  for (const auto& c : contexts) item.requests.push_back({c, kDelimiter + continuation});
  item.choices = contexts;
  item.gold = gold;
  return item;
}

// Field access that names the field (the caller adds file and line).
std::string str(const json& row, const char* key) { return required_field<std::string>(row, key); }
std::vector<std::string> strings(const json& row, const char* key) {
  auto it = row.find(key);
  if (it == row.end() || !it->is_array() || it->empty())
    throw_error(ErrorKind::kCorruptInput, "field '{}' must be a non-empty list of strings", key);
  std::vector<std::string> out;
  for (const auto& v : *it) {
    if (!v.is_string()) throw_error(ErrorKind::kCorruptInput, "field '{}' must hold strings", key);
    out.push_back(v.get<std::string>());
  }
  return out;
}
std::int64_t gold_index(const json& row, const char* key, std::size_t choices) {
  const auto g = required_field<std::int64_t>(row, key);
  if (g < 0 || static_cast<std::size_t>(g) >= choices)
    throw_error(ErrorKind::kCorruptInput, "field '{}' = {} is not a valid index into {} choices", key, g, choices);
  return g;
}
// {"text": [...], "label": [...]} with answerKey naming a label (ARC, OpenBookQA originals).
std::pair<std::vector<std::string>, std::int64_t> labelled_choices(const json& row) {
  const json& choices = row.at("choices");
  const auto texts = strings(choices, "text");
  const auto labels = strings(choices, "label");
  const auto key = str(row, "answerKey");
  auto it = std::find(labels.begin(), labels.end(), key);
  if (it == labels.end()) throw_error(ErrorKind::kCorruptInput, "answerKey '{}' is not among the labels", key);
  return {texts, it - labels.begin()};
}

// ---- task templates: each reads the formats it knows, detected from the row's keys ----

TaskItem lambada(const json& row) {
  if (row.contains("text")) {  // original: predict the last word
    const std::string text = str(row, "text");
    const auto space = text.rfind(' ');
    if (space == std::string::npos) throw_error(ErrorKind::kCorruptInput, "'text' has no space before its last word");
    TaskItem item;
    item.requests.push_back({text.substr(0, space), " " + text.substr(space + 1)});
    return item;
  }
  TaskItem item;  // llm-foundry: {"context", "continuation"}
  item.requests.push_back({str(row, "context"), kDelimiter + str(row, "continuation")});
  return item;
}

// Python's str.replace: every non-overlapping occurrence, in one left-to-right pass.
std::string replace_once_each(const std::string& text, const std::string& from, const std::string& to) {
  std::string out;
  std::size_t last = 0;
  for (std::size_t p = text.find(from); p != std::string::npos; p = text.find(from, last)) {
    out.append(text, last, p - last);
    out += to;
    last = p + from.size();
  }
  out.append(text, last, std::string::npos);
  return out;
}

// HellaSwag's preprocessing of WikiHow artefacts, step for step as in the harness.
std::string hellaswag_preprocess(const std::string& raw) {
  std::string text = replace_once_each(strip(raw), " [title]", ". ");
  static const std::regex brackets(R"(\[.*?\])");
  text = std::regex_replace(text, brackets, "");
  return replace_once_each(text, "  ", " ");
}

TaskItem hellaswag(const json& row) {
  std::string ctx_b = str(row, "ctx_b");
  if (!ctx_b.empty()) {  // Python's str.capitalize(): first letter upper, the rest lower
    std::transform(ctx_b.begin(), ctx_b.end(), ctx_b.begin(), [](unsigned char c) { return std::tolower(c); });
    ctx_b[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(ctx_b[0])));
  }
  const std::string query = hellaswag_preprocess(str(row, "activity_label") + ": " + str(row, "ctx_a") + " " + ctx_b);
  std::vector<std::string> endings;
  for (const auto& e : strings(row, "endings")) endings.push_back(hellaswag_preprocess(e));
  const json& label = row.at("label");
  const std::int64_t gold = label.is_string() ? std::stoll(label.get<std::string>()) : label.get<std::int64_t>();
  if (gold < 0 || gold >= static_cast<std::int64_t>(endings.size())) throw_error(ErrorKind::kCorruptInput, "label {} out of range", gold);
  return shared_context(query, endings, gold);
}

TaskItem piqa(const json& row) {
  if (row.contains("goal")) {  // original; the label comes from the separate labels file
    return shared_context("Question: " + str(row, "goal") + "\nAnswer:", {str(row, "sol1"), str(row, "sol2")},
                          row.contains("label") ? gold_index(row, "label", 2) : 0);
  }
  const auto choices = strings(row, "choices");  // llm-foundry: query = "Question: {goal}\n"
  return shared_context(str(row, "query") + "Answer:", choices, gold_index(row, "gold", choices.size()));
}

TaskItem winogrande(const json& row) {
  if (row.contains("sentence")) {  // original
    const std::string sentence = str(row, "sentence");
    const auto blank = sentence.find('_');
    if (blank == std::string::npos) throw_error(ErrorKind::kCorruptInput, "'sentence' has no '_' blank");
    const json& answer = row.at("answer");
    const std::int64_t gold = (answer.is_string() ? std::stoll(answer.get<std::string>()) : answer.get<std::int64_t>()) - 1;
    if (gold != 0 && gold != 1) throw_error(ErrorKind::kCorruptInput, "'answer' must be 1 or 2");
    return shared_continuation({sentence.substr(0, blank) + str(row, "option1"), sentence.substr(0, blank) + str(row, "option2")},
                               strip(sentence.substr(blank + 1)), gold);
  }
  const auto contexts = strings(row, "context_options");  // llm-foundry
  return shared_continuation(contexts, str(row, "continuation"), gold_index(row, "gold", contexts.size()));
}

TaskItem openbookqa(const json& row) {
  if (row.contains("question_stem")) {
    auto [choices, gold] = labelled_choices(row);
    return shared_context(str(row, "question_stem"), choices, gold);
  }
  const auto choices = strings(row, "choices");
  return shared_context(str(row, "query"), choices, gold_index(row, "gold", choices.size()));
}

TaskItem copa(const json& row) {
  auto lower_first = [](std::string s) {
    if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
    return s;
  };
  if (row.contains("premise")) {  // SuperGLUE original
    const std::string question = str(row, "question");
    if (question != "cause" && question != "effect") throw_error(ErrorKind::kCorruptInput, "'question' must be cause or effect");
    std::string premise = strip(str(row, "premise"));
    premise = premise.substr(0, premise.empty() ? 0 : premise.size() - 1);  // drops the final period
    return shared_context(premise + (question == "cause" ? " because" : " therefore"),
                          {lower_first(str(row, "choice1")), lower_first(str(row, "choice2"))}, gold_index(row, "label", 2));
  }
  // llm-foundry writes "premise, because"; the harness has no comma.
  std::string query = str(row, "query");
  for (const char* connector : {", because", ", therefore"})
    if (ends_with(query, connector)) query = query.substr(0, query.size() - std::string(connector).size()) + (connector + 1);
  const auto choices = strings(row, "choices");
  std::vector<std::string> lowered;
  for (const auto& c : choices) lowered.push_back(lower_first(c));
  return shared_context(query, lowered, gold_index(row, "gold", choices.size()));
}

TaskItem arc(const json& row) {
  if (row.contains("question")) {
    auto [choices, gold] = labelled_choices(row);
    return shared_context("Question: " + str(row, "question") + "\nAnswer:", choices, gold);
  }
  const auto choices = strings(row, "choices");  // llm-foundry: query = "Question: {question}"
  return shared_context(str(row, "query") + "\nAnswer:", choices, gold_index(row, "gold", choices.size()));
}

TaskItem boolq(const json& row) {
  if (row.contains("passage")) {
    const json& label = row.contains("label") ? row.at("label") : row.at("answer");
    const std::int64_t gold = label.is_boolean() ? (label.get<bool>() ? 1 : 0) : label.get<std::int64_t>();
    return shared_context(str(row, "passage") + "\nQuestion: " + str(row, "question") + "?\nAnswer:", {"no", "yes"}, gold);
  }
  // llm-foundry: "Passage: {passage}\nQuestion: {question}?"; the harness has no "Passage: ".
  std::string query = str(row, "query");
  if (starts_with(query, "Passage: ")) query = query.substr(9);
  const auto choices = strings(row, "choices");
  return shared_context(query + "\nAnswer:", choices, gold_index(row, "gold", choices.size()));
}

TaskItem rte(const json& row) {
  const bool superglue = row.contains("premise");
  const std::string first = str(row, superglue ? "premise" : "sentence1");
  const std::string second = str(row, superglue ? "hypothesis" : "sentence2");
  const json& label = row.at("label");
  std::int64_t gold;
  if (label.is_string()) {
    const auto l = label.get<std::string>();
    if (l != "entailment" && l != "not_entailment") throw_error(ErrorKind::kCorruptInput, "label '{}' is not entailment/not_entailment", l);
    gold = l == "entailment" ? 0 : 1;
  } else {
    gold = gold_index(row, "label", 2);
  }
  return shared_context(first + "\nQuestion: " + second + " True or False?\nAnswer:", {"True", "False"}, gold);
}

TaskItem generic(const json& row) {
  if (row.contains("context_options")) {
    const auto contexts = strings(row, "context_options");
    return shared_continuation(contexts, str(row, "continuation"), gold_index(row, "gold", contexts.size()));
  }
  const std::string context = row.contains("query") ? str(row, "query") : str(row, "context");
  if (row.contains("choices")) {
    const auto choices = strings(row, "choices");
    return shared_context(context, choices, gold_index(row, "gold", choices.size()));
  }
  TaskItem item;
  item.requests.push_back({context, kDelimiter + str(row, "continuation")});
  return item;
}

struct TaskDefinition {
  TaskType type;
  bool acc_norm;
  const char* default_file;  // under $CC_DATA_DIR; nullptr = none shipped
  std::function<TaskItem(const json&)> make_item;
};

const std::map<std::string, TaskDefinition>& definitions() {
  static const std::map<std::string, TaskDefinition> d = {
      {"lambada", {TaskType::kLoglikelihood, false, "tasks/lambada_test.jsonl", lambada}},
      {"hellaswag", {TaskType::kMultipleChoice, true, "tasks/hellaswag_val_full.txt", hellaswag}},
      {"piqa", {TaskType::kMultipleChoice, true, "tasks/piqa_valid.jsonl", piqa}},
      {"winogrande", {TaskType::kMultipleChoice, false, "tasks/llm-foundry/winogrande.jsonl", winogrande}},
      {"openbookqa", {TaskType::kMultipleChoice, true, "tasks/llm-foundry/openbook_qa.jsonl", openbookqa}},
      {"copa", {TaskType::kMultipleChoice, false, "tasks/llm-foundry/copa.jsonl", copa}},
      {"arc_easy", {TaskType::kMultipleChoice, true, "tasks/llm-foundry/arc_easy.jsonl", arc}},
      {"boolq", {TaskType::kMultipleChoice, false, "tasks/llm-foundry/boolq.jsonl", boolq}},
      {"rte", {TaskType::kMultipleChoice, false, nullptr, rte}},
  };
  return d;
}

// llama.cpp's HellaSwag text: 6 lines per item (query, gold index, 4 endings), already
// preprocessed except that ctx_b is not capitalised (docs/eval.md).
std::vector<TaskItem> read_hellaswag_text(const fs::path& path, std::int64_t limit) {
  std::istringstream in(read_file(path));
  std::vector<TaskItem> items;
  std::string line;
  std::vector<std::string> group;
  std::size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    group.push_back(line);
    if (group.size() < 6) continue;
    std::int64_t gold = -1;
    try {
      gold = std::stoll(group[1]);
    } catch (const std::exception&) {
    }
    if (gold < 0 || gold > 3)
      throw_error(ErrorKind::kCorruptInput, "{}:{}: expected a gold index 0..3, got '{}'", path.string(), line_no - 4, group[1]);
    items.push_back(shared_context(group[0], {group[2], group[3], group[4], group[5]}, gold));
    group.clear();
    if (limit > 0 && static_cast<std::int64_t>(items.size()) >= limit) return items;
  }
  if (!group.empty())
    throw_error(ErrorKind::kCorruptInput, "{}: {} trailing lines do not form a 6-line item", path.string(), group.size());
  return items;
}

}  // namespace

const std::vector<std::string>& standard_tasks() {
  static const std::vector<std::string> names = {"lambada", "hellaswag", "piqa", "winogrande", "openbookqa", "copa", "arc_easy", "boolq"};
  return names;
}

Task load_task(const std::string& spec, std::int64_t limit) {
  Task task;
  fs::path path;
  std::function<TaskItem(const json&)> make_item;
  if (starts_with(spec, "mc:")) {
    task.name = fs::path(spec.substr(3)).stem().string();
    task.type = TaskType::kMultipleChoice;
    task.reports_acc_norm = true;
    path = spec.substr(3);
    make_item = generic;
  } else {
    const auto eq = spec.find('=');
    task.name = spec.substr(0, eq);
    auto it = definitions().find(task.name);
    if (it == definitions().end()) {
      std::string known;
      for (const auto& [name, d] : definitions()) known += (known.empty() ? "" : ", ") + name;
      throw_error(ErrorKind::kInvalidArgument, "unknown task '{}' (known: {}; or mc:PATH for a generic JSONL task)", task.name, known);
    }
    const TaskDefinition& def = it->second;
    task.type = def.type;
    task.reports_acc_norm = def.acc_norm;
    make_item = def.make_item;
    if (eq != std::string::npos) {
      path = spec.substr(eq + 1);
    } else if (def.default_file == nullptr) {
      throw_error(ErrorKind::kNotFound, "task '{}' has no file in the shared data; pass {}=PATH", task.name, task.name);
    } else {
      auto found = find_data(def.default_file);
      if (!found) throw_error(ErrorKind::kNotFound, "task '{}': {} not found under {} (set CC_DATA_DIR)", task.name, def.default_file, data_dir().string());
      path = *found;
    }
  }
  if (!fs::exists(path)) throw_error(ErrorKind::kNotFound, "task '{}': {} does not exist", task.name, path.string());
  task.source = path.string();

  if (task.name == "hellaswag" && path.extension() == ".txt") {
    task.items = read_hellaswag_text(path, limit);
    return task;
  }
  std::vector<json> rows = read_jsonl_file(path);
  // PIQA's original release keeps the labels in a separate file beside the questions.
  if (task.name == "piqa" && !rows.empty() && rows.front().contains("goal") && !rows.front().contains("label")) {
    fs::path labels = path;
    labels.replace_filename(path.stem().string() + "-labels.lst");
    std::istringstream in(read_file(labels));
    std::string line;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (!std::getline(in, line) || (line != "0" && line != "1"))
        throw_error(ErrorKind::kCorruptInput, "{}:{}: expected label 0 or 1 for item {}", labels.string(), i + 1, i + 1);
      rows[i]["label"] = std::stoll(line);
    }
    task.source += " + " + labels.filename().string();
  }
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (limit > 0 && static_cast<std::int64_t>(task.items.size()) >= limit) break;
    // A bad row is a corrupt data file, whichever helper noticed it.
    try {
      if (!rows[i].is_object()) throw_error(ErrorKind::kCorruptInput, "not a JSON object");
      task.items.push_back(make_item(rows[i]));
    } catch (const Error& e) {
      throw_error(ErrorKind::kCorruptInput, "task '{}': {} item {}: {}", task.name, path.string(), i + 1, e.message());
    } catch (const std::exception& e) {
      throw_error(ErrorKind::kCorruptInput, "task '{}': {} item {}: {}", task.name, path.string(), i + 1, e.what());
    }
  }
  if (task.items.empty()) throw_error(ErrorKind::kCorruptInput, "task '{}': {} holds no items", task.name, path.string());
  const bool single = task.items.front().requests.size() == 1;
  if (single && task.type == TaskType::kMultipleChoice) task.type = TaskType::kLoglikelihood;  // generic {"context","continuation"}
  return task;
}

}  // namespace cushioncache
