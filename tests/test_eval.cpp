// Evaluation against computations written out in the test: perplexity windows scored one
// by one in float64, and for every task format the harness's prompt (spelled out here
// from lm-evaluation-harness's task definitions) and its scores from separate, unbatched
// forward passes with a float64 log-softmax.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>

#include "cushioncache/core/data_dir.h"
#include "cushioncache/core/files.h"
#include "cushioncache/io/corpus.h"
#include "cushioncache/eval/loglikelihood.h"
#include "cushioncache/eval/perplexity.h"
#include "cushioncache/eval/tasks.h"
#include "cushioncache/eval/zero_shot.h"
#include "cushioncache/io/json_file.h"
#include "cushioncache/model/loader.h"
#include "support/test_support.h"

namespace cc = cushioncache;
namespace fs = std::filesystem;

namespace {

std::optional<cc::testing::StoriesModel> stories() { return cc::testing::load_stories(); }

// log p(continuation | prefix, context), the harness's way, one forward pass, float64.
std::pair<double, bool> by_hand(cc::CausalLM& model, const cc::Tokenizer& tok, const std::string& context,
                                const std::string& continuation, const std::vector<std::int64_t>& prefix = {}) {
  // Harness: trailing spaces of the context belong to the continuation; the continuation's
  // tokens are those of encode(context + continuation) past encode(context).
  std::string ctx = context, cont = continuation;
  while (!ctx.empty() && ctx.back() == ' ') {
    cont.insert(0, 1, ' ');
    ctx.pop_back();
  }
  const auto whole = tok.encode(ctx + cont, cc::BosPolicy::kNo);
  const auto n_ctx = tok.encode(ctx, cc::BosPolicy::kNo).size();
  // Input: all but the last token, keeping only what fits after the prefix (left truncation).
  const std::size_t room = static_cast<std::size_t>(model.config().max_position_embeddings) - prefix.size();
  const std::size_t dropped = whole.size() - 1 > room ? whole.size() - 1 - room : 0;
  std::vector<std::int64_t> ids = prefix;
  ids.insert(ids.end(), whole.begin() + static_cast<std::ptrdiff_t>(dropped), whole.end() - 1);
  at::Tensor logits = model.forward(at::tensor(ids, at::kLong).unsqueeze(0)).logits.squeeze(0).to(at::kDouble);
  at::Tensor logp = at::log_softmax(logits, -1);
  double sum = 0;
  bool greedy = true;
  for (std::size_t k = n_ctx; k < whole.size(); ++k) {  // logits at row r predict token r + 1
    const auto row = static_cast<std::int64_t>(prefix.size() + (k - 1 - dropped));
    sum += logp[row][whole[k]].item<double>();
    greedy = greedy && logits[row].argmax().item<std::int64_t>() == whole[k];
  }
  return {sum, greedy};
}

void write(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

// Checks the first item's requests and that the evaluator's scores (batched) equal the
// hand computation for the first `items` items.
void check_scores(cc::testing::StoriesModel& s, const cc::Task& task, std::size_t items, const std::vector<std::int64_t>& prefix = {}) {
  cc::KVCache prefix_kv;
  cc::ZeroShotOptions options;
  options.batch_size = 3;  // forces padding and reordering
  if (!prefix.empty()) {
    prefix_kv = cc::compute_kv_cache(*s.model, prefix);
    options.prefix = &prefix_kv;
  }
  cc::Task head = task;
  head.items.resize(std::min(items, head.items.size()));
  const auto scores = cc::score_task_items(*s.model, *s.tokenizer, head, options);
  const auto& lls = scores.loglikelihoods;
  const auto& greedy = scores.greedy;
  for (std::size_t i = 0; i < head.items.size(); ++i)
    for (std::size_t j = 0; j < head.items[i].requests.size(); ++j) {
      const auto& r = head.items[i].requests[j];
      const auto [expected, expected_greedy] = by_hand(*s.model, *s.tokenizer, r.context, r.continuation, prefix);
      INFO(task.name << " item " << i << " choice " << j);
      CHECK(lls[i][j] == Approx(expected).margin(1e-4));
      CHECK(greedy[i][j] == expected_greedy);
    }
}

}  // namespace

TEST_CASE("perplexity equals a float64 window-by-window computation", "[eval][perplexity]") {
  auto s = stories();
  auto wiki = cc::testing::data_file("text/wikitext-2-raw/wiki.test.gptq.txt");
  if (!s || !wiki) return;
  const auto tokens = s->tokenizer->encode(cc::read_file(*wiki), cc::BosPolicy::kAuto);
  REQUIRE(tokens.front() == 1);  // BOS once, at the start of the corpus
  const std::int64_t T = 256, windows = 4;

  cc::PerplexityOptions options;
  options.seq_len = T;
  options.max_windows = windows;
  options.batch_size = 3;  // a full batch and a partial one
  const cc::PerplexityResult result = cc::evaluate_perplexity(*s->model, tokens, options);
  CHECK(result.windows == windows);
  CHECK(result.scored_tokens == windows * (T - 1));
  CHECK(result.corpus_tokens == static_cast<std::int64_t>(tokens.size()));

  auto hand = [&](const std::vector<std::int64_t>& prefix) {
    double nll = 0;
    for (std::int64_t w = 0; w < windows; ++w) {
      std::vector<std::int64_t> ids = prefix;
      ids.insert(ids.end(), tokens.begin() + w * T, tokens.begin() + (w + 1) * T);
      at::Tensor logp = at::log_softmax(s->model->forward(at::tensor(ids, at::kLong).unsqueeze(0)).logits.squeeze(0).to(at::kDouble), -1);
      for (std::int64_t t = 1; t < T; ++t) nll -= logp[static_cast<std::int64_t>(prefix.size()) + t - 1][ids[prefix.size() + t]].item<double>();
    }
    return std::exp(nll / static_cast<double>(windows * (T - 1)));
  };
  CHECK(result.perplexity == Approx(hand({})).epsilon(1e-6));

  SECTION("a cached prefix sits before every window and is never scored") {
    const auto prefix = s->tokenizer->encode("Once upon a time", cc::BosPolicy::kYes);
    cc::KVCache kv = cc::compute_kv_cache(*s->model, prefix);
    options.prefix = &kv;
    const auto with_prefix = cc::evaluate_perplexity(*s->model, tokens, options);
    CHECK(with_prefix.scored_tokens == windows * (T - 1));
    CHECK(with_prefix.perplexity == Approx(hand(prefix)).epsilon(1e-6));
    CHECK(with_prefix.perplexity != Approx(result.perplexity).epsilon(1e-3));
  }
  SECTION("windows that cannot fit are refused") {
    options.seq_len = 600;  // stories260K has 512 positions
    cc::testing::expect_error([&] { cc::evaluate_perplexity(*s->model, tokens, options); }, cc::ErrorKind::kInvalidArgument,
                              {"seq_len (600)", "512"});
    options.seq_len = 2;
    cc::testing::expect_error([&] { cc::evaluate_perplexity(*s->model, {1}, options); }, cc::ErrorKind::kInvalidArgument,
                              {"fewer than one window"});
  }
}

TEST_CASE("the evaluation corpora follow their protocols", "[eval][perplexity]") {
  auto wiki = cc::testing::data_file("text/wikitext-2-raw/wiki.test.gptq.txt");
  auto c4 = cc::testing::data_file("text/c4/c4_validation_2k.jsonl");
  if (!wiki || !c4) return;
  CHECK(cc::load_corpus("wikitext2").text == cc::read_file(*wiki));
  const cc::Corpus corpus = cc::load_corpus("c4");
  CHECK(corpus.max_windows == 256);
  // " ".join of the first 1100 documents' text.
  const auto rows = cc::read_jsonl_file(*c4);
  std::string expected;
  for (int i = 0; i < 1100; ++i) expected += (i ? " " : "") + rows[static_cast<std::size_t>(i)]["text"].get<std::string>();
  CHECK(corpus.text == expected);
  cc::testing::expect_error([] { cc::load_corpus("no-such-corpus.txt"); }, cc::ErrorKind::kNotFound, {"no-such-corpus.txt"});
}

TEST_CASE("the harness's context/continuation split", "[eval][tasks]") {
  auto s = stories();
  if (!s) return;
  const cc::Tokenizer& tok = *s->tokenizer;
  // Trailing context spaces move into the continuation.
  const auto a = cc::encode_pair(tok, "Once upon a ", "time", cc::BosPolicy::kNo);
  const auto b = cc::encode_pair(tok, "Once upon a", " time", cc::BosPolicy::kNo);
  CHECK(a.context == b.context);
  CHECK(a.continuation == b.continuation);
  // The continuation is what the whole encoding has past the context's own tokens.
  auto whole = tok.encode("Once upon a time", cc::BosPolicy::kNo);
  CHECK(b.context == tok.encode("Once upon a", cc::BosPolicy::kNo));
  CHECK(std::vector<std::int64_t>(whole.begin() + static_cast<std::ptrdiff_t>(b.context.size()), whole.end()) == b.continuation);
  // An empty context is the prefix token (BOS).
  const auto e = cc::encode_pair(tok, "", "Once", cc::BosPolicy::kNo);
  CHECK(e.context == std::vector<std::int64_t>{1});
  CHECK(e.continuation == tok.encode("Once", cc::BosPolicy::kNo));
  // BOS policy yes puts BOS in front of the context, not of the continuation.
  CHECK(cc::encode_pair(tok, "Once upon a", " time", cc::BosPolicy::kYes).context.front() == 1);
  CHECK(cc::character_length("naïve café") == 10);
}

TEST_CASE("every task format builds the harness prompt and scores it exactly", "[eval][tasks]") {
  auto s = stories();
  if (!s) return;
  cc::testing::TempDir dir;

  SECTION("lambada: original and llm-foundry give the same request") {
    if (!cc::testing::data_file("tasks/lambada_test.jsonl") || !cc::testing::data_file("tasks/llm-foundry/lambada_openai.jsonl")) return;
    const cc::Task original = cc::load_task("lambada", 5);
    CHECK(original.type == cc::TaskType::kLoglikelihood);
    const auto& r = original.items[0].requests[0];
    CHECK(r.continuation == " signs");
    CHECK(r.context.substr(r.context.size() - 16) == "don't care about");
    const auto foundry_path = *cc::find_data("tasks/llm-foundry/lambada_openai.jsonl");
    const cc::Task foundry = cc::load_task("lambada=" + foundry_path.string(), 5);
    for (std::size_t i = 0; i < 5; ++i) {
      CHECK(foundry.items[i].requests[0].context == original.items[i].requests[0].context);
      CHECK(foundry.items[i].requests[0].continuation == original.items[i].requests[0].continuation);
    }
    check_scores(*s, original, 5);
    check_scores(*s, original, 3, s->tokenizer->encode("\n", cc::BosPolicy::kYes));  // behind a prefix
  }
  SECTION("hellaswag: llama.cpp text and the original JSONL") {
    if (!cc::testing::data_file("tasks/hellaswag_val_full.txt")) return;
    const cc::Task text = cc::load_task("hellaswag", 4);
    CHECK(text.items[0].requests[0].context == "Roof shingle removal: A man is sitting on a roof. he");
    CHECK(text.items[0].requests[0].continuation == " is using wrap to wrap a pair of skis.");
    CHECK(text.items[0].gold == 3);
    check_scores(*s, text, 2);
    write(dir / "hellaswag.jsonl",
          R"({"activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.", "ctx_b": "he", "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.", "is holding a rubik's cube.", "starts pulling up roofing on a roof."], "label": "3"})"
          "\n"
          R"({"activity_label": "Home and Garden", "ctx_a": "[header] How to clean a grill [title] Heat the grill.", "ctx_b": "", "endings": ["[step] Scrub it  with a brush.", "Leave it."], "label": 0})"
          "\n");
    const cc::Task json = cc::load_task("hellaswag=" + (dir / "hellaswag.jsonl").string());
    CHECK(json.items[0].requests[0].context == "Roof shingle removal: A man is sitting on a roof. He");  // ctx_b.capitalize()
    CHECK(json.items[1].requests[0].context == "Home and Garden: How to clean a grill. Heat the grill.");
    // The harness strips before removing "[step]", so the space after it survives.
    CHECK(json.items[1].choices[0] == " Scrub it with a brush.");
    CHECK(json.items[1].requests[0].continuation == "  Scrub it with a brush.");
    check_scores(*s, json, 2);
  }
  SECTION("piqa: original with its labels file and llm-foundry") {
    if (!cc::testing::data_file("tasks/piqa_valid.jsonl") || !cc::testing::data_file("tasks/llm-foundry/piqa.jsonl")) return;
    const cc::Task original = cc::load_task("piqa", 3);
    CHECK(original.items[0].requests[0].context == "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:");
    CHECK(original.items[1].choices[0] == "replace drawer with bobby pin ");  // the original keeps its trailing space
    CHECK(original.items[1].gold == 1);
    const cc::Task foundry = cc::load_task("piqa=" + cc::find_data("tasks/llm-foundry/piqa.jsonl")->string(), 3);
    CHECK(foundry.items[0].requests[0].context == original.items[0].requests[0].context);
    CHECK(foundry.items[0].gold == original.items[0].gold);
    check_scores(*s, original, 3);
  }
  SECTION("winogrande: partial scoring from llm-foundry and from the original") {
    if (!cc::testing::data_file("tasks/llm-foundry/winogrande.jsonl")) return;
    const cc::Task foundry = cc::load_task("winogrande", 3);
    CHECK(foundry.items[0].requests[0].context == "Sarah was a much better surgeon than Maria so Sarah");
    CHECK(foundry.items[0].requests[1].context == "Sarah was a much better surgeon than Maria so Maria");
    CHECK(foundry.items[0].requests[1].continuation == " always got the easier cases.");
    CHECK(foundry.items[0].gold == 1);
    write(dir / "wino.jsonl",
          R"({"sentence": "Sarah was a much better surgeon than Maria so _ always got the easier cases.", "option1": "Sarah", "option2": "Maria", "answer": "2"})"
          "\n");
    const cc::Task original = cc::load_task("winogrande=" + (dir / "wino.jsonl").string());
    for (int j = 0; j < 2; ++j) {
      CHECK(original.items[0].requests[j].context == foundry.items[0].requests[j].context);
      CHECK(original.items[0].requests[j].continuation == foundry.items[0].requests[j].continuation);
    }
    CHECK(original.items[0].gold == 1);
    check_scores(*s, foundry, 3);
  }
  SECTION("openbookqa, arc_easy, copa, boolq: llm-foundry and the originals agree") {
    if (!cc::testing::data_file("tasks/llm-foundry/arc_easy.jsonl")) return;
    const cc::Task obqa = cc::load_task("openbookqa", 2);
    CHECK(obqa.items[1].requests[0].context == "There is most likely going to be fog around:");
    CHECK(obqa.items[1].requests[0].continuation == " a marsh");
    write(dir / "obqa.jsonl",
          R"({"question_stem": "There is most likely going to be fog around:", "choices": {"text": ["a marsh", "a tundra", "the plains", "a desert"], "label": ["A", "B", "C", "D"]}, "answerKey": "A"})"
          "\n");
    const cc::Task obqa_original = cc::load_task("openbookqa=" + (dir / "obqa.jsonl").string());
    CHECK(obqa_original.items[0].requests[3].continuation == obqa.items[1].requests[3].continuation);
    CHECK(obqa_original.items[0].gold == obqa.items[1].gold);

    const cc::Task arc = cc::load_task("arc_easy", 2);
    CHECK(arc.items[0].requests[0].context ==
          "Question: Which statement best explains why photosynthesis is the foundation of most food webs?\nAnswer:");
    write(dir / "arc.jsonl",
          R"({"question": "Which statement best explains why photosynthesis is the foundation of most food webs?", "choices": {"text": ["Sunlight is the source of energy for nearly all ecosystems.", "b", "c", "d"], "label": ["A", "B", "C", "D"]}, "answerKey": "A"})"
          "\n");
    CHECK(cc::load_task("arc_easy=" + (dir / "arc.jsonl").string()).items[0].requests[0].context == arc.items[0].requests[0].context);

    const cc::Task copa = cc::load_task("copa", 2);
    CHECK(copa.items[0].requests[0].context == "The man turned on the faucet therefore");  // no comma, as the harness
    CHECK(copa.items[0].requests[1].continuation == " water flowed from the spout.");
    write(dir / "copa.jsonl",
          R"({"premise": "The man turned on the faucet.", "choice1": "The toilet filled with water.", "choice2": "Water flowed from the spout.", "question": "effect", "label": 1})"
          "\n");
    const cc::Task copa_original = cc::load_task("copa=" + (dir / "copa.jsonl").string());
    CHECK(copa_original.items[0].requests[0].context == copa.items[0].requests[0].context);
    CHECK(copa_original.items[0].requests[0].continuation == copa.items[0].requests[0].continuation);

    const cc::Task boolq = cc::load_task("boolq", 1);
    const std::string& q = boolq.items[0].requests[0].context;
    CHECK(q.rfind("All biomass goes through", 0) == 0);  // "Passage: " is not part of the harness prompt
    const std::string tail = "\nQuestion: does ethanol take more energy make that produces?\nAnswer:";
    CHECK(q.substr(q.size() - tail.size()) == tail);
    CHECK(boolq.items[0].requests[1].continuation == " yes");
    check_scores(*s, obqa, 2);
    check_scores(*s, arc, 2);
    check_scores(*s, copa, 2);
    check_scores(*s, boolq, 1);
  }
  SECTION("rte (GLUE and SuperGLUE fields) and the generic multiple-choice format") {
    write(dir / "rte.jsonl",
          R"({"sentence1": "Dana Reeve died.", "sentence2": "Dana Reeve is dead.", "label": 0})"
          "\n"
          R"({"premise": "A cat sat.", "hypothesis": "A dog sat.", "label": "not_entailment"})"
          "\n");
    const cc::Task rte = cc::load_task("rte=" + (dir / "rte.jsonl").string());
    CHECK(rte.items[0].requests[0].context == "Dana Reeve died.\nQuestion: Dana Reeve is dead. True or False?\nAnswer:");
    CHECK(rte.items[0].requests[1].continuation == " False");
    CHECK(rte.items[1].gold == 1);
    check_scores(*s, rte, 2);
    write(dir / "mine.jsonl",
          R"({"query": "The sky is", "choices": ["blue", "a fish"], "gold": 0})"
          "\n"
          R"({"context_options": ["Tom said Tom", "Tom said Ann"], "continuation": "was late.", "gold": 1})"
          "\n");
    const cc::Task mine = cc::load_task("mc:" + (dir / "mine.jsonl").string());
    CHECK(mine.name == "mine");
    CHECK(mine.items[0].requests[1].continuation == " a fish");
    CHECK(mine.items[1].requests[1].context == "Tom said Ann");
    check_scores(*s, mine, 2);
  }
}

TEST_CASE("task metrics are the harness's: argmax, length-normalized argmax, mean and stderr", "[eval][tasks]") {
  auto s = stories();
  if (!s || !cc::testing::data_file("tasks/llm-foundry/arc_easy.jsonl")) return;
  const cc::Task task = cc::load_task("arc_easy", 40);
  cc::ZeroShotOptions options;
  const auto lls = cc::score_task_items(*s->model, *s->tokenizer, task, options).loglikelihoods;
  const cc::TaskResult result = cc::evaluate_task(*s->model, *s->tokenizer, task, options);
  double acc = 0, acc_norm = 0;
  for (std::size_t i = 0; i < lls.size(); ++i) {
    std::size_t best = 0, best_norm = 0;
    for (std::size_t j = 1; j < lls[i].size(); ++j) {
      if (lls[i][j] > lls[i][best]) best = j;
      const auto len = [&](std::size_t k) { return static_cast<double>(task.items[i].choices[k].size()); };  // ASCII here
      if (lls[i][j] / len(j) > lls[i][best_norm] / len(best_norm)) best_norm = j;
    }
    acc += best == static_cast<std::size_t>(task.items[i].gold);
    acc_norm += best_norm == static_cast<std::size_t>(task.items[i].gold);
  }
  const double n = 40;
  REQUIRE(result.metrics.size() == 2);
  CHECK(result.metrics[0].name == "acc");
  CHECK(result.metrics[0].value == Approx(acc / n));
  CHECK(result.metrics[1].name == "acc_norm");
  CHECK(result.metrics[1].value == Approx(acc_norm / n));
  // mean_stderr of 0/1 values: sqrt(p (1 - p) n / (n - 1)) / sqrt(n)
  const double p = acc / n;
  CHECK(result.metrics[0].standard_error == Approx(std::sqrt(p * (1 - p) * n / (n - 1)) / std::sqrt(n)));
}

TEST_CASE("batching and shared contexts do not change scores", "[eval]") {
  auto s = stories();
  if (!s || !cc::testing::data_file("tasks/hellaswag_val_full.txt")) return;
  const cc::Task task = cc::load_task("hellaswag", 12);
  cc::ZeroShotOptions one;
  one.batch_size = 1;
  one.share_contexts = false;  // every request whole, one at a time: the reference
  const auto reference = cc::score_task_items(*s->model, *s->tokenizer, task, one);
  for (std::int64_t batch : {1, 5, 16})
    for (bool share : {false, true}) {
      cc::ZeroShotOptions options;
      options.batch_size = batch;
      options.share_contexts = share;
      const auto got = cc::score_task_items(*s->model, *s->tokenizer, task, options);
      for (std::size_t i = 0; i < got.loglikelihoods.size(); ++i)
        for (std::size_t j = 0; j < got.loglikelihoods[i].size(); ++j) {
          INFO("batch " << batch << " shared " << share << " item " << i << " choice " << j);
          CHECK(got.loglikelihoods[i][j] == Approx(reference.loglikelihoods[i][j]).margin(1e-4));
          CHECK(got.greedy[i][j] == reference.greedy[i][j]);
        }
    }
}

TEST_CASE("a continuation longer than the context is scored on its last tokens and counted", "[eval]") {
  auto s = stories();
  if (!s) return;
  std::string long_text;
  for (int i = 0; i < 120; ++i) long_text += " and then the dog ran";
  const auto request = cc::encode_pair(*s->tokenizer, "Once upon a time", long_text, cc::BosPolicy::kNo);
  REQUIRE(request.continuation.size() > 512);
  const auto scores = cc::score_continuations(*s->model, {request}, {});
  CHECK(scores[0].truncated);
  // By hand: the window is the last 512 tokens before the final one; all of it is scored.
  std::vector<std::int64_t> full = request.context;
  full.insert(full.end(), request.continuation.begin(), request.continuation.end());
  std::vector<std::int64_t> input(full.end() - 513, full.end() - 1);
  at::Tensor logp = at::log_softmax(s->model->forward(at::tensor(input, at::kLong).unsqueeze(0)).logits.squeeze(0).to(at::kDouble), -1);
  double expected = 0;
  for (std::size_t t = 0; t < 512; ++t) expected += logp[static_cast<std::int64_t>(t)][full[full.size() - 512 + t]].item<double>();
  CHECK(scores[0].logprob == Approx(expected).margin(1e-3));
}

TEST_CASE("bad task specs and files give named errors", "[eval][errors]") {
  cc::testing::TempDir dir;
  cc::testing::expect_error([] { cc::load_task("mmlu"); }, cc::ErrorKind::kInvalidArgument, {"unknown task 'mmlu'", "hellaswag"});
  cc::testing::expect_error([] { cc::load_task("rte"); }, cc::ErrorKind::kNotFound, {"rte=PATH"});
  cc::testing::expect_error([&] { cc::load_task("mc:" + (dir / "none.jsonl").string()); }, cc::ErrorKind::kNotFound, {"none.jsonl"});
  write(dir / "bad.jsonl", "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 5}\n");
  cc::testing::expect_error([&] { cc::load_task("mc:" + (dir / "bad.jsonl").string()); }, cc::ErrorKind::kCorruptInput,
                            {"bad.jsonl", "item 1", "'gold' = 5"});
  write(dir / "broken.jsonl", "{\"query\": \"q\",\n");
  cc::testing::expect_error([&] { cc::load_task("arc_easy=" + (dir / "broken.jsonl").string()); }, cc::ErrorKind::kCorruptInput,
                            {"broken.jsonl:1", "invalid JSON"});
  write(dir / "missing.jsonl", "{\"question\": \"q\"}\n");
  cc::testing::expect_error([&] { cc::load_task("arc_easy=" + (dir / "missing.jsonl").string()); }, cc::ErrorKind::kCorruptInput,
                            {"missing.jsonl", "item 1"});
  write(dir / "hs.txt", "ctx\n1\na\nb\nc\nd\nextra\n");
  cc::testing::expect_error([&] { cc::load_task("hellaswag=" + (dir / "hs.txt").string()); }, cc::ErrorKind::kCorruptInput,
                            {"hs.txt", "6-line"});
}
