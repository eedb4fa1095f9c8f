// `cushioncache train`: the byte-level tokenizer, the schedule, that training learns, that
// a stopped and resumed run ends with the same weights as an uninterrupted one, and the
// errors a user meets.
#include <cmath>
#include <fstream>
#include <string>

#include <ATen/ATen.h>

#include "cushioncache/core/error.h"
#include "cushioncache/io/safetensors.h"
#include "cushioncache/model/loader.h"
#include "cushioncache/tokenizer/hf_tokenizer.h"
#include "cushioncache/train/trainer.h"
#include "support/test_models.h"
#include "support/test_support.h"

#include <catch2/catch.hpp>

namespace cc = cushioncache;
namespace fs = std::filesystem;

namespace {

// A small corpus a tiny model learns within a few dozen steps: a handful of sentences,
// repeated in varying order, as JSONL documents.
fs::path write_corpus(const cc::testing::TempDir& dir) {
  const char* sentences[] = {"The cat sat on the mat. ", "A dog ran in the park. ", "Birds sing at dawn. ",
                             "The sun sets in the west. ", "Fish swim in the sea. "};
  const fs::path path = dir / "corpus.jsonl";
  std::ofstream out(path);
  for (int doc = 0; doc < 60; ++doc) {
    std::string text;
    for (int s = 0; s < 12; ++s) text += sentences[(doc * 7 + s * 3) % 5];
    out << "{\"text\": \"" << text << "\"}\n";
  }
  return path;
}

cc::TrainConfig tiny_config(const cc::testing::TempDir& dir, const fs::path& corpus, const std::string& output) {
  cc::TrainConfig c;
  c.name = "tiny";
  c.output = (dir / output).string();
  c.corpus = corpus.string();
  c.model.hidden_size = 32;
  c.model.num_layers = 2;
  c.model.num_heads = 4;
  c.model.intermediate_size = 64;
  c.optimizer.lr = 1e-2;
  c.optimizer.min_lr = 1e-3;
  c.optimizer.warmup_steps = 5;
  c.steps = 30;
  c.batch_size = 4;
  c.seq_len = 32;
  c.seed = 3;
  c.log_every = 1;
  c.checkpoint_every = 10;
  c.probe.data = corpus.string();  // held-out text is not the point here; no shared data needed
  c.probe.samples = 2;
  c.probe.seq_len = 32;
  c.probe.ppl_windows = 0;
  return c;
}

}  // namespace

TEST_CASE("byte-level tokenizer: ids are the UTF-8 bytes after BOS, and decode inverts encode", "[train]") {
  cc::testing::TempDir dir;
  cc::write_byte_level_tokenizer(dir.path(), 256);
  auto tokenizer = cc::load_tokenizer(dir.path());
  CHECK(tokenizer->vocab_size() == cc::kByteTokenizerVocab);
  CHECK(tokenizer->bos_id() == cc::kByteTokenizerBos);
  CHECK(tokenizer->eos_id() == cc::kByteTokenizerEos);
  const std::string text = "Grüße, 世界!\n\ttab ~ \x01";
  const auto ids = tokenizer->encode(text);
  REQUIRE(ids.size() == text.size() + 1);
  CHECK(ids[0] == cc::kByteTokenizerBos);
  for (std::size_t i = 0; i < text.size(); ++i) CHECK(ids[i + 1] == static_cast<unsigned char>(text[i]));
  CHECK(tokenizer->decode(ids) == text);
  CHECK(tokenizer->encode(text, cc::BosPolicy::kNo).size() == text.size());
}

TEST_CASE("learning rate: linear warmup, then cosine from lr to min_lr", "[train]") {
  cc::TrainOptimizer o;
  o.lr = 1e-3;
  o.min_lr = 1e-4;
  o.warmup_steps = 10;
  CHECK(cc::learning_rate_at(o, 0, 110) == Approx(1e-4));
  CHECK(cc::learning_rate_at(o, 4, 110) == Approx(5e-4));
  CHECK(cc::learning_rate_at(o, 9, 110) == Approx(1e-3));
  CHECK(cc::learning_rate_at(o, 10, 110) == Approx(1e-3));
  CHECK(cc::learning_rate_at(o, 60, 110) == Approx(5.5e-4));  // half way: the mean of lr and min_lr
  CHECK(cc::learning_rate_at(o, 35, 110) == Approx(1e-4 + 0.45e-3 * (1 + std::cos(M_PI / 4))));
  CHECK(cc::learning_rate_at(o, 110, 110) == Approx(1e-4));
}

TEST_CASE("training learns the corpus, writes a loadable model, and a stopped run resumes to the same weights", "[train]") {
  cc::testing::TempDir dir;
  const fs::path corpus = write_corpus(dir);

  const cc::TrainConfig straight = tiny_config(dir, corpus, "straight");
  const cc::TrainResult full = cc::train_model(straight);
  REQUIRE(full.log.size() == 30);
  // From about ln(258) = 5.55 nats to below 2.5, under the corpus's byte unigram
  // entropy (2.67 nats): the model uses context, not just byte frequencies.
  CHECK(full.log.front().loss > 4.5);
  CHECK(full.log.back().loss < 2.5);
  REQUIRE(full.probes.size() == 3);  // steps 10, 20, 30
  CHECK(full.probes.back().attention_on_first.size() == 2);
  for (double a : full.probes.back().attention_on_first) CHECK((a >= 0 && a <= 1));

  // The output folder is an ordinary Hugging Face model folder.
  auto model = cc::load_model(straight.output);
  auto tokenizer = cc::load_tokenizer(straight.output);
  CHECK(model->config().num_layers == 2);
  CHECK(model->config().vocab_size == cc::kByteTokenizerVocab);
  const auto ids = tokenizer->encode("The cat sat on the");
  const at::Tensor logits = model->forward(cc::testing::ids_tensor(ids)).logits;
  // The trained model predicts the corpus: " mat" after "The cat sat on the".
  CHECK(logits[0][-1].argmax().item<std::int64_t>() == static_cast<unsigned char>(' '));

  // Stop at step 20, resume to 30: the batches and optimizer state carry over exactly.
  const cc::TrainConfig split = tiny_config(dir, corpus, "split");
  cc::TrainRunOptions stop;
  stop.stop_at_step = 20;
  CHECK(cc::train_model(split, stop).steps == 20);
  CHECK_FALSE(fs::exists(fs::path(split.output) / "model.safetensors"));
  cc::TrainRunOptions resume;
  resume.resume = true;
  const cc::TrainResult resumed = cc::train_model(split, resume);
  CHECK(resumed.log.size() == 30);
  CHECK(resumed.probes.size() == 3);
  CHECK(resumed.log.back().loss == Approx(full.log.back().loss).epsilon(1e-4));
  auto a = cc::load_model(straight.output);
  auto b = cc::load_model(split.output);
  auto wa = a->named_weights();
  auto wb = b->named_weights();
  REQUIRE(wa.size() == wb.size());
  for (std::size_t i = 0; i < wa.size(); ++i) {
    INFO(wa[i].first);
    CHECK(cc::testing::max_abs_diff(*wa[i].second, *wb[i].second) < 1e-5);
  }

  // Resuming under a changed config is refused, naming the field.
  cc::TrainConfig changed = split;
  changed.optimizer.lr = 2e-2;
  changed.steps = 40;
  cc::testing::expect_error([&] { cc::train_model(changed, resume); }, cc::ErrorKind::kMismatch, {"optimizer", "trainer_state.json"});
  // A fresh run into a folder that holds checkpoints is refused too.
  cc::testing::expect_error([&] { cc::train_model(split); }, cc::ErrorKind::kInvalidArgument, {"already holds training checkpoints", "resume them"});
}

TEST_CASE("bfloat16 autocast trains on CPU with a loss close to float32's", "[train]") {
  cc::testing::TempDir dir;
  const fs::path corpus = write_corpus(dir);
  cc::TrainConfig f32 = tiny_config(dir, corpus, "f32");
  f32.steps = 3;
  cc::TrainConfig bf16 = tiny_config(dir, corpus, "bf16");
  bf16.steps = 3;
  bf16.precision = "bfloat16";
  const auto a = cc::train_model(f32);
  const auto b = cc::train_model(bf16);
  REQUIRE(b.log.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) CHECK(b.log[i].loss == Approx(a.log[i].loss).margin(0.05));
  // ... and not the same run: the matmuls did run in bfloat16.
  CHECK(b.log[0].loss != a.log[0].loss);
  // Weights and checkpoints stay float32.
  CHECK(cc::load_model(bf16.output)->dtype() == at::kFloat);
}

TEST_CASE("train config errors name the file, key and value", "[train]") {
  cc::testing::TempDir dir;
  auto write = [&](const std::string& text) {
    const fs::path p = dir / "train.yaml";
    std::ofstream(p) << text;
    return p.string();
  };
  cc::testing::expect_error([&] { cc::load_train_config(write("output: o\ncorpus: c\nstep: 3\n")); }, cc::ErrorKind::kInvalidConfig,
                         {"train.yaml", "step"});
  cc::testing::expect_error([&] { cc::load_train_config(write("output: o\ncorpus: c\nmodel: {hidden_size: 30, num_heads: 4}\n")); },
                         cc::ErrorKind::kInvalidConfig, {"train.yaml", "hidden_size", "30"});
  cc::testing::expect_error([&] { cc::load_train_config(write("output: o\ncorpus: c\noptimizer: {lr: -1}\n")); },
                         cc::ErrorKind::kInvalidConfig, {"optimizer.lr", "> 0"});
  cc::testing::expect_error([&] { cc::load_train_config(write("corpus: c\n")); }, cc::ErrorKind::kInvalidConfig, {"output"});
  cc::testing::expect_error([&] { cc::load_train_config(write("output: o\ncorpus: c\nprecision: fp16\n")); },
                         cc::ErrorKind::kInvalidConfig, {"precision", "fp16"});
  // A corpus shorter than one sequence, and a missing corpus.
  cc::TrainConfig c = tiny_config(dir, dir / "short.txt", "short");
  std::ofstream(dir / "short.txt") << "too short";
  cc::testing::expect_error([&] { cc::train_model(c); }, cc::ErrorKind::kInvalidConfig, {"short.txt", "seq_len"});
  c.corpus = (dir / "missing.jsonl").string();
  c.output = (dir / "missing").string();
  cc::testing::expect_error([&] { cc::train_model(c); }, cc::ErrorKind::kNotFound, {"missing.jsonl"});
}
