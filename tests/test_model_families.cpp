// OPT (pre- and post-norm), BLOOM and GPT-2 checkpoints in their real Hugging Face
// layouts, checked against independent float64 implementations and against the
// invariants the method relies on; Mistral's sliding window with a cached prefix.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <nlohmann/json.hpp>

#include "cushioncache/io/safetensors.h"
#include "cushioncache/model/causal_lm.h"
#include "cushioncache/model/block_streamer.h"
#include "cushioncache/model/bloom.h"
#include "cushioncache/model/config.h"
#include "cushioncache/model/family.h"
#include "cushioncache/model/loader.h"
#include "cushioncache/quant/smoothquant.h"
#include "support/reference_families.h"
#include "support/test_support.h"

#include <catch2/catch.hpp>

namespace cc = cushioncache;
using cc::testing::ids_tensor;
using cc::testing::max_abs_diff;
using cc::testing::random_ids;

namespace {

std::vector<std::int64_t> concat(std::vector<std::int64_t> a, const std::vector<std::int64_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// The families with a float64 reference, by tiny_family_config name.
const char* const kFamilies[] = {"opt", "opt-350m", "bloom", "gpt2"};

cc::ModelConfig mistral_config() {
  cc::ModelConfig c = cc::testing::tiny_llama_config(false);
  c.model_type = "mistral";
  c.sliding_window = 5;
  return c;
}

}  // namespace

TEST_CASE("OPT, BLOOM and GPT-2 checkpoints load and match float64 references", "[model][families]") {
  for (const char* family : kFamilies) {
    DYNAMIC_SECTION(family) {
      cc::testing::TempDir dir;
      const cc::HfWeights weights = cc::testing::random_weights(cc::testing::tiny_family_config(family), 3);
      cc::testing::write_hf_folder(dir.path(), weights);
      auto model = cc::load_model(dir.path());
      const cc::ModelConfig& c = model->config();
      CHECK(c.model_type == weights.config.model_type);
      CHECK(c.hidden_size == weights.config.hidden_size);
      CHECK(c.intermediate_size == weights.config.intermediate_size);
      CHECK(c.num_heads == weights.config.num_heads);
      CHECK(c.hidden_act == weights.config.hidden_act);
      CHECK(c.norm_before == weights.config.norm_before);
      CHECK(c.embedding_dim() == weights.config.embedding_dim());
      CHECK(c.final_norm == weights.config.final_norm);

      const auto ids = random_ids(21, c.vocab_size, 4);
      at::Tensor expected = cc::testing::reference_family_logits(weights, ids);
      CHECK(max_abs_diff(model->forward(ids_tensor(ids)).logits.squeeze(0), expected) < 1e-4);
      cc::LoadOptions f64;
      f64.dtype = at::kDouble;
      // Softmax runs in float32 for every dtype, as in transformers.
      CHECK(max_abs_diff(cc::load_model(dir.path(), f64)->forward(ids_tensor(ids)).logits.squeeze(0), expected) < 1e-6);

      SECTION("checkpoints saved from the base model (no model./transformer. prefix) load the same") {
        const std::string prefix = cc::model_family(c.model_type).base_prefix;
        std::vector<std::pair<std::string, at::Tensor>> bare;
        for (const auto& [name, t] : weights.tensors)
          bare.emplace_back(name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name, t);
        cc::write_safetensors(dir / "model.safetensors", bare);
        CHECK(max_abs_diff(cc::load_model(dir.path())->forward(ids_tensor(ids)).logits.squeeze(0), expected) < 1e-4);
      }
      SECTION("save_hf_model writes the checkpoint layout back") {
        cc::testing::TempDir out;
        cc::save_hf_model(*model, out.path());
        const cc::SafetensorsCheckpoint saved = cc::SafetensorsCheckpoint::open(out.path());
        for (const auto& [name, t] : weights.tensors) {
          INFO(name);
          REQUIRE(saved.contains(name));
          CHECK(max_abs_diff(saved.load(name), t) == 0.0);
        }
        CHECK(cc::read_hf_config(out / "config.json").positions() == c.positions());
        CHECK(max_abs_diff(cc::load_model(out.path())->forward(ids_tensor(ids)).logits.squeeze(0), expected) < 1e-4);
      }
    }
  }
}

TEST_CASE("every family: a cached prefix, incremental decoding and padded batches equal plain forwards", "[model][families][prefix]") {
  c10::NoGradGuard no_grad;
  std::vector<cc::ModelConfig> configs;
  for (const char* family : kFamilies) configs.push_back(cc::testing::tiny_family_config(family));
  configs.push_back(mistral_config());  // windows reach back into the prefix
  for (const cc::ModelConfig& config : configs) {
    DYNAMIC_SECTION(config.model_type << (config.norm_before ? "" : " (post-norm)")) {
      auto model = cc::build_model(cc::testing::random_weights(config, 11));
      const std::int64_t V = config.vocab_size;
      const auto prefix_ids = random_ids(4, V, 21), text = random_ids(9, V, 22), other = random_ids(6, V, 23);
      at::Tensor full = model->forward(ids_tensor(concat(prefix_ids, text))).logits;

      // The prefix's KV in front: text positions start at 4 (OPT's table row 6, BLOOM's
      // ALiBi distances include the prefix).
      cc::KVCache prefix = cc::compute_kv_cache(*model, prefix_ids);
      cc::ForwardOptions with_prefix;
      with_prefix.past = &prefix;
      CHECK(max_abs_diff(model->forward(ids_tensor(text), with_prefix).logits, full.narrow(1, 4, 9)) < 1e-5);

      // One token at a time from the prefix.
      cc::KVCache cache = prefix;
      for (std::size_t t = 0; t < text.size(); ++t) {
        cc::ForwardOptions step;
        step.past = &cache;
        step.return_cache = true;
        auto out = model->forward(ids_tensor({text[t]}), step);
        cache = std::move(out.cache);
        CHECK(max_abs_diff(out.logits.squeeze(1), full.select(1, 4 + static_cast<std::int64_t>(t))) < 1e-5);
      }

      // A padded batch behind the prefix: the short row equals its own forward. Left
      // padding checks that padding takes no position (learned tables, ALiBi distances);
      // a sliding window counts cache slots, as transformers' does, so Mistral pads right.
      const bool left = !config.sliding_window;
      std::vector<std::int64_t> padded = other, mask(other.size(), 1);
      padded.insert(left ? padded.begin() : padded.end(), 3, 0);
      mask.insert(left ? mask.begin() : mask.end(), 3, 0);
      cc::ForwardOptions batch = with_prefix;
      batch.attention_mask = at::cat({at::ones({1, 9}, at::kLong), ids_tensor(mask)}, 0);
      at::Tensor both = model->forward(at::cat({ids_tensor(text), ids_tensor(padded)}, 0), batch).logits;
      CHECK(max_abs_diff(both.select(0, 0), full.squeeze(0).narrow(0, 4, 9)) < 1e-5);
      at::Tensor alone = model->forward(ids_tensor(concat(prefix_ids, other))).logits.squeeze(0).narrow(0, 4, 6);
      CHECK(max_abs_diff(both.select(0, 1).narrow(0, left ? 3 : 0, 6), alone) < 1e-5);
    }
  }
}

TEST_CASE("every family's site producers fold SmoothQuant scales without changing the function", "[model][families][quant]") {
  c10::NoGradGuard no_grad;
  for (const char* family : kFamilies) {
    DYNAMIC_SECTION(family) {
      auto model = cc::build_model(cc::testing::random_weights(cc::testing::tiny_family_config(family), 5));
      const auto ids = ids_tensor(random_ids(12, model->config().vocab_size, 6));
      at::Tensor before = model->forward(ids).logits;
      // Made-up channel maxima spanning two orders of magnitude: every producer's scale
      // differs per channel, so a wrong row mapping changes the logits.
      std::map<cc::SiteKey, at::Tensor> absmax;
      at::Generator gen = at::detail::createCPUGenerator(7);
      for (const cc::SiteProducer& p : model->site_producers())
        absmax[{p.layer, p.site}] = at::exp(at::rand({p.producer_row.size(0)}, gen, at::kFloat) * 4.6);
      const auto scales = cc::apply_smoothquant(*model, absmax, 0.5);
      // Post-norm OPT has no norm producers; GELU MLPs no down-projection producer.
      const cc::ModelConfig& c = model->config();
      const std::size_t per_layer = (c.norm_before && !c.residual_from_norm ? 2 : 0) + 1 + (c.hidden_act == "relu" ? 1 : 0);
      CHECK(scales.size() == per_layer * static_cast<std::size_t>(c.num_layers));
      CHECK(max_abs_diff(model->forward(ids).logits, before) < 1e-4);
    }
  }
}

TEST_CASE("every family reports each site with its role's shape", "[model][families][sites]") {
  struct Recorder : cc::ActivationHook {
    std::map<cc::Site, std::vector<std::int64_t>> shapes;
    at::Tensor on_activation(const cc::SiteContext& ctx, const at::Tensor& x) override {
      if (ctx.layer == 1) shapes[ctx.site] = x.sizes().vec();
      return x;
    }
  };
  for (const char* family : kFamilies) {
    DYNAMIC_SECTION(family) {
      auto model = cc::build_model(cc::testing::random_weights(cc::testing::tiny_family_config(family), 8));
      const cc::ModelConfig& c = model->config();
      auto recorder = std::make_shared<Recorder>();
      cc::HookHandle handle = model->add_hook(recorder);
      model->forward(ids_tensor(random_ids(5, c.vocab_size, 9)));
      CHECK(recorder->shapes.size() == cc::all_sites().size());
      CHECK(recorder->shapes[cc::Site::kDownProjInput] == std::vector<std::int64_t>{1, 5, c.intermediate_size});
      CHECK(recorder->shapes[cc::Site::kKey] == std::vector<std::int64_t>{1, c.num_heads, 5, c.head_dim});
      CHECK(recorder->shapes[cc::Site::kOProjInput] == std::vector<std::int64_t>{1, 5, c.hidden_size});
      // Every linear is fed by the site of its role.
      for (const cc::LinearRef& ref : model->linears())
        CHECK(ref.linear->weight.size(1) == recorder->shapes[ref.input_site].back());
    }
  }
}

TEST_CASE("ALiBi slopes follow the paper for any head count", "[model][families]") {
  for (std::int64_t heads : {1, 4, 6, 8, 12, 16, 112}) {
    at::Tensor slopes = cc::alibi_slopes(heads);
    REQUIRE(slopes.size(0) == heads);
    for (std::int64_t h = 0; h < heads; ++h) CHECK(slopes[h].item<double>() == Approx(cc::testing::reference_alibi_slope(h, heads)));
  }
}

TEST_CASE("family configs and inputs that do not fit fail by name", "[model][families][errors]") {
  cc::testing::TempDir dir;
  auto write_config = [&](const nlohmann::json& j) { std::ofstream(dir / "config.json") << j.dump(); };
  nlohmann::json gpt2 = cc::testing::hf_config_json(cc::testing::tiny_family_config("gpt2"));

  SECTION("missing family key") {
    gpt2.erase("n_embd");
    write_config(gpt2);
    cc::testing::expect_error([&] { cc::read_hf_config(dir / "config.json"); }, cc::ErrorKind::kInvalidConfig, {"config.json", "n_embd"});
  }
  SECTION("heads that do not divide the width") {
    gpt2["n_head"] = 5;
    write_config(gpt2);
    cc::testing::expect_error([&] { cc::read_hf_config(dir / "config.json"); }, cc::ErrorKind::kInvalidConfig, {"n_embd", "n_head"});
  }
  SECTION("unknown activation and unknown family") {
    gpt2["activation_function"] = "swish";
    write_config(gpt2);
    cc::testing::expect_error([&] { cc::read_hf_config(dir / "config.json"); }, cc::ErrorKind::kUnsupported, {"swish"});
    gpt2["model_type"] = "falcon";
    write_config(gpt2);
    cc::testing::expect_error([&] { cc::read_hf_config(dir / "config.json"); }, cc::ErrorKind::kUnsupported,
                              {"falcon", "opt", "bloom", "gpt2"});
  }
  SECTION("a Conv1D weight stored as nn.Linear") {
    cc::HfWeights w = cc::testing::random_weights(cc::testing::tiny_family_config("gpt2"), 1);
    at::Tensor& c_fc = w.tensors.at("transformer.h.0.mlp.c_fc.weight");
    c_fc = c_fc.t().contiguous();
    cc::testing::write_hf_folder(dir.path(), w);
    cc::testing::expect_error([&] { cc::load_model(dir.path()); }, cc::ErrorKind::kMismatch,
                              {"model.safetensors", "transformer.h.0.mlp.c_fc.weight", "[32, 128]"});
  }
  SECTION("learned positions end at max_position_embeddings, a prefix included") {
    for (const char* family : {"opt", "gpt2"}) {
      auto model = cc::build_model(cc::testing::random_weights(cc::testing::tiny_family_config(family), 2));
      const std::int64_t max = model->config().max_position_embeddings;
      cc::KVCache prefix = cc::compute_kv_cache(*model, random_ids(8, 97, 3));
      cc::ForwardOptions fo;
      fo.past = &prefix;
      CHECK_NOTHROW(model->forward(ids_tensor(random_ids(max - 8, 97, 4)), fo));
      cc::testing::expect_error([&] { model->forward(ids_tensor(random_ids(max - 7, 97, 4)), fo); }, cc::ErrorKind::kInvalidArgument,
                                {"position 128", "max_position_embeddings 128"});
    }
  }
}

// transformers' own logits: tools/hf_parity.py --write-fixtures saves, per family, a
// small random model (save_pretrained) with the logits transformers computes for one
// sequence, in full and behind a past_key_values prefix.
TEST_CASE("every family matches transformers' logits on its saved fixtures", "[model][families][parity]") {
  namespace fs = std::filesystem;
  const fs::path root = fs::path(CC_SOURCE_DIR) / "tests/fixtures/hf_parity";
  if (!fs::is_directory(root)) {
    cc::testing::skip_without_hardware(
        "no transformers fixtures in tests/fixtures/hf_parity: tools/hf_parity.py --write-fixtures needs a machine with PyTorch "
        "and transformers (docs/models.md)");
    return;
  }
  c10::NoGradGuard no_grad;
  auto relative_error = [](const at::Tensor& ours, const at::Tensor& theirs) {
    return max_abs_diff(ours, theirs) / theirs.abs().max().item<double>();
  };
  for (const auto& entry : fs::directory_iterator(root)) {
    if (!entry.is_directory()) continue;
    DYNAMIC_SECTION(entry.path().filename().string()) {
      auto model = cc::load_model(entry.path());
      const cc::SafetensorsFile expected = cc::SafetensorsFile::open(entry.path() / "expected.safetensors");
      const at::Tensor ids = expected.load("input_ids").to(at::kLong);
      CHECK(relative_error(model->forward(ids.unsqueeze(0)).logits.squeeze(0), expected.load("logits").to(at::kFloat)) <= 1e-4);
      const std::int64_t P = std::stoll(expected.metadata().at("prefix_length"));
      const std::vector<std::int64_t> prefix(ids.data_ptr<std::int64_t>(), ids.data_ptr<std::int64_t>() + P);
      const cc::KVCache cache = cc::compute_kv_cache(*model, prefix);
      cc::ForwardOptions behind;
      behind.past = &cache;
      at::Tensor cached = model->forward(ids.narrow(0, P, ids.size(0) - P).unsqueeze(0), behind).logits.squeeze(0);
      CHECK(relative_error(cached, expected.load("cached_logits").to(at::kFloat)) <= 1e-4);
    }
  }
}

TEST_CASE("block streaming computes what the resident model computes, one block on the device at a time", "[model][families][streaming]") {
  // Each block's weights must be device copies while it runs, and host tensors again after.
  struct BlockWatcher : cc::ActivationHook {
    std::vector<cc::LinearRef> refs;
    std::map<const cc::Linear*, const void*> host_data;
    int checked = 0, on_host_while_running = 0, other_block_on_device = 0;
    at::Tensor on_activation(const cc::SiteContext& ctx, const at::Tensor& x) override {
      if (ctx.site != cc::Site::kAttnInput) return x;
      for (const cc::LinearRef& ref : refs) {
        const bool on_host = ref.linear->weight.data_ptr() == host_data.at(ref.linear);
        if (ref.layer == ctx.layer && on_host) ++on_host_while_running;
        if (ref.layer != ctx.layer && !on_host) ++other_block_on_device;
        ++checked;
      }
      return x;
    }
  };
  std::vector<cc::ModelConfig> configs = {cc::testing::tiny_llama_config(true)};
  for (const char* family : kFamilies) configs.push_back(cc::testing::tiny_family_config(family));
  for (const cc::ModelConfig& config : configs) {
    DYNAMIC_SECTION(config.model_type << (config.norm_before ? "" : " (post-norm)")) {
      const cc::HfWeights weights = cc::testing::random_weights(config, 17);
      auto resident = cc::build_model(weights);
      cc::LoadOptions streaming;
      streaming.stream_blocks = true;
      auto streamed = cc::build_model(weights, streaming);
      REQUIRE(streamed->streams_blocks());
      const auto ids = ids_tensor(random_ids(11, config.vocab_size, 18));
      CHECK(max_abs_diff(streamed->forward(ids).logits, resident->forward(ids).logits) == 0.0);

      auto watcher = std::make_shared<BlockWatcher>();
      watcher->refs = streamed->linears();
      for (const cc::LinearRef& ref : watcher->refs) watcher->host_data[ref.linear] = ref.linear->weight.data_ptr();
      {
        cc::HookHandle handle = streamed->add_hook(watcher);
        const cc::KVCache prefix = cc::compute_kv_cache(*streamed, random_ids(3, config.vocab_size, 19));
        cc::ForwardOptions behind;
        behind.past = &prefix;
        const cc::KVCache resident_prefix = cc::compute_kv_cache(*resident, random_ids(3, config.vocab_size, 19));
        cc::ForwardOptions resident_behind;
        resident_behind.past = &resident_prefix;
        CHECK(max_abs_diff(streamed->forward(ids, behind).logits, resident->forward(ids, resident_behind).logits) == 0.0);
      }
      CHECK(watcher->checked > 0);
      CHECK(watcher->on_host_while_running == 0);
      CHECK(watcher->other_block_on_device == 0);
      for (const cc::LinearRef& ref : watcher->refs) CHECK(ref.linear->weight.data_ptr() == watcher->host_data.at(ref.linear));
    }
  }
}

TEST_CASE("a device budget keeps the first blocks resident and streams the rest", "[model][streaming]") {
  SECTION("placement: the most resident blocks whose weights fit beside two streamed blocks") {
    const std::vector<std::int64_t> equal{10, 10, 10, 10};
    CHECK(cc::place_blocks(equal, 5, 45).resident_blocks == 4);  // all fits: nothing streams
    CHECK(cc::place_blocks(equal, 5, 45).peak_device_bytes == 45);
    CHECK(cc::place_blocks(equal, 5, 44).resident_blocks == 1);  // 5 + 10 + 2 x 10 = 35; two resident would need 45
    CHECK(cc::place_blocks(equal, 5, 44).peak_device_bytes == 35);
    CHECK(cc::place_blocks(equal, 5, 25).resident_blocks == 0);
    // A large first block: streaming it needs 2 x 30, keeping it resident only 30 + 2 x 10.
    CHECK(cc::place_blocks({30, 10, 10, 10}, 0, 55).resident_blocks == 1);
    cc::testing::expect_error([&] { cc::place_blocks(equal, 5, 24); }, cc::ErrorKind::kInvalidArgument,
                              {"device memory budget 24 B", "25 B", "two blocks"});
  }

  SECTION("a model under a budget computes what the resident model computes") {
    cc::ModelConfig config = cc::testing::tiny_llama_config(false);
    config.num_layers = 4;
    const cc::HfWeights weights = cc::testing::random_weights(config, 23);
    auto resident = cc::build_model(weights);
    std::int64_t all = 0, block0 = 0;
    for (auto& [name, tensor] : resident->named_weights()) {
      const std::int64_t bytes = tensor->numel() * static_cast<std::int64_t>(tensor->element_size());
      all += bytes;
      if (cc::block_of(cc::model_family(config.model_type), name) == 0) block0 += bytes;
    }
    // The plan from the config alone counts what the built model holds.
    const cc::StreamingPlan plan = cc::plan_streaming(config, at::kFloat, all);
    CHECK(plan.block_bytes.size() == 4);
    CHECK(plan.block_bytes[0] == block0);
    CHECK(std::accumulate(plan.block_bytes.begin(), plan.block_bytes.end(), plan.other_bytes) == all);
    const auto ids = ids_tensor(random_ids(9, config.vocab_size, 24));
    const at::Tensor expected = resident->forward(ids).logits;

    cc::LoadOptions options;
    options.max_device_bytes = all;  // fits: nothing streams
    auto fits = cc::build_model(weights, options);
    CHECK_FALSE(fits->streams_blocks());
    CHECK(max_abs_diff(fits->forward(ids).logits, expected) == 0.0);

    options.max_device_bytes = all - 1;  // 4 equal blocks: 1 resident + room for 2 = all - block
    auto one_resident = cc::build_model(weights, options);
    CHECK(one_resident->streamed_blocks() == 3);
    CHECK(max_abs_diff(one_resident->forward(ids).logits, expected) == 0.0);
    CHECK(max_abs_diff(one_resident->forward(ids).logits, expected) == 0.0);  // again, after the prefetches of the first forward

    options.max_device_bytes = all - 2 * block0 - 1;  // not even streaming fits
    cc::testing::expect_error([&] { cc::build_model(weights, options); }, cc::ErrorKind::kInvalidArgument, {"device memory budget"});
    options.max_device_bytes = 0;
    cc::testing::expect_error([&] { cc::build_model(weights, options); }, cc::ErrorKind::kInvalidArgument, {"device memory budget must be positive"});
  }

  SECTION("acquire takes the prefetched copy, made when prefetch was called; another block's acquire drops it") {
    at::Tensor w0 = at::zeros({4}), w1 = at::zeros({4});
    cc::BlockStreamer streamer({{&w0}, {&w1}}, c10::Device(c10::kCPU));
    const at::Tensor host1 = w1;
    CHECK(streamer.next_streamed(0) == 1);
    CHECK(streamer.next_streamed(1) == 0);  // wraps to the first streamed block
    streamer.prefetch(1);
    host1.fill_(7.0f);  // changed after the prefetch: the prefetched copy still holds zeros
    {
      cc::AcquiredBlock block(streamer, 1);
      CHECK(w1.data_ptr() != host1.data_ptr());
      CHECK(w1.sum().item<float>() == 0.0f);
    }
    CHECK(w1.data_ptr() == host1.data_ptr());
    streamer.prefetch(1);
    { cc::AcquiredBlock other(streamer, 0); }  // block 0 ran instead: the prefetch of 1 is dropped
    {
      cc::AcquiredBlock block(streamer, 1);
      CHECK(w1.sum().item<float>() == 28.0f);  // a fresh copy
    }
  }
}
