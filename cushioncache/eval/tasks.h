// Zero-shot tasks as lm-evaluation-harness defines them: each item becomes one
// (context, continuation) request per choice, with the harness's prompt template and
// target delimiter " ". The same task reads its original dataset format or
// llm-foundry's preprocessed one, rebuilding the harness prompt from either
// (docs/eval.md lists each format and the one known difference).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cushioncache {

enum class TaskType {
  kMultipleChoice,  // acc = argmax of summed log-probs (acc_norm: divided by choice length)
  kLoglikelihood,   // one continuation: acc = greedy match, plus perplexity (LAMBADA)
};

struct TaskRequest {
  std::string context;
  std::string continuation;  // delimiter included, e.g. " yes"
};

struct TaskItem {
  std::vector<TaskRequest> requests;  // one per choice (one for loglikelihood tasks)
  std::vector<std::string> choices;   // choice texts without delimiter: acc_norm's lengths
  std::int64_t gold = 0;
};

struct Task {
  std::string name;
  TaskType type = TaskType::kMultipleChoice;
  bool reports_acc_norm = false;
  std::string source;  // file and format read
  std::vector<TaskItem> items;
};

// The tasks `--tasks all` means: lambada, hellaswag, piqa, winogrande, openbookqa, copa,
// arc_easy, boolq (rte has no file in the shared data).
const std::vector<std::string>& standard_tasks();

// spec: a task name (its default file under $CC_DATA_DIR), "name=PATH" (that task's
// template, reading PATH in any format the task knows), or "mc:PATH" (the generic
// JSONL format: {"context"|"query", "choices", "gold"}, {"context_options",
// "continuation", "gold"}, or {"context", "continuation"}). limit > 0 keeps the first
// `limit` items. Errors name the file, line and field.
Task load_task(const std::string& spec, std::int64_t limit = 0);

}  // namespace cushioncache
