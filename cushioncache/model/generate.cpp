#include "cushioncache/model/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include "cushioncache/core/error.h"

namespace cushioncache {
namespace {

std::int64_t pick_next(const at::Tensor& logits, const GenerateOptions& options, at::Generator& generator) {
  if (options.temperature == 0.0) return logits.argmax().item<std::int64_t>();  // first maximum, as llama2.c
  at::Tensor probs = at::softmax(logits / options.temperature, -1);
  if (options.top_p < 1.0) {
    auto [sorted, order] = probs.sort(/*dim=*/-1, /*descending=*/true);
    // Keep the smallest head of the distribution whose mass reaches top_p.
    at::Tensor keep = (sorted.cumsum(-1) - sorted).lt(options.top_p);
    at::Tensor kept = at::zeros_like(probs).scatter(-1, order, sorted * keep.to(sorted.scalar_type()));
    probs = kept / kept.sum();
  }
  return at::multinomial(probs, 1, /*replacement=*/false, generator).item<std::int64_t>();
}

bool ends_with_replacement(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}

}  // namespace

GenerateResult generate(CausalLM& model, const Tokenizer& tokenizer, std::string_view prompt, const GenerateOptions& options) {
  return generate(model, tokenizer, tokenizer.encode(prompt, options.bos), options);
}

GenerateResult generate(CausalLM& model, const Tokenizer& tokenizer, std::vector<std::int64_t> prompt_ids,
                        const GenerateOptions& options) {
  if (!(options.temperature >= 0.0) || !std::isfinite(options.temperature))
    throw_error(ErrorKind::kInvalidArgument, "temperature {} must be a finite number >= 0", options.temperature);
  if (!(options.top_p > 0.0 && options.top_p <= 1.0))
    throw_error(ErrorKind::kInvalidArgument, "top_p {} must be in (0, 1]", options.top_p);
  if (options.steps < 1) throw_error(ErrorKind::kInvalidArgument, "steps {} must be at least 1", options.steps);
  const ModelConfig& config = model.config();
  if (tokenizer.vocab_size() > config.vocab_size)
    throw_error(ErrorKind::kMismatch, "the tokenizer has {} tokens but the model's vocabulary is {}: they do not belong together",
                tokenizer.vocab_size(), config.vocab_size);

  GenerateResult result;
  result.tokens = std::move(prompt_ids);
  result.prompt_tokens = static_cast<std::int64_t>(result.tokens.size());
  if (result.tokens.empty())
    throw_error(ErrorKind::kInvalidArgument, options.prefix != nullptr
                                                 ? "a prompt is needed after a cached prefix (its KV holds no next-token logits)"
                                                 : "nothing to condition on: the prompt is empty and the tokenizer adds no BOS");
  const std::int64_t prefix_length = options.prefix != nullptr ? options.prefix->length() : 0;
  const std::int64_t steps = std::min(options.steps, config.max_position_embeddings - prefix_length);
  if (result.prompt_tokens > steps)
    throw_error(ErrorKind::kInvalidArgument, "the prompt is {} tokens, more than the {} steps allowed", result.prompt_tokens, steps);

  std::vector<std::int64_t> stop(config.eos_token_ids.begin(), config.eos_token_ids.end());
  for (auto id : {tokenizer.eos_id(), tokenizer.bos_id(), config.bos_token_id})
    if (id) stop.push_back(*id);

  c10::NoGradGuard no_grad;
  at::Generator generator = at::detail::createCPUGenerator(options.seed);
  const auto start = std::chrono::steady_clock::now();
  std::size_t emitted = 0;
  // Text behind a cached prefix starts a document of its own (as evaluation treats it),
  // so it decodes as it would after BOS: SentencePiece drops the first dummy space.
  const std::optional<std::int64_t> document_start = options.prefix != nullptr ? tokenizer.bos_id() : std::nullopt;
  auto stream = [&](bool final) {
    if (document_start) {
      std::vector<std::int64_t> ids{*document_start};
      ids.insert(ids.end(), result.tokens.begin(), result.tokens.end());
      result.text = tokenizer.decode(ids);
    } else {
      result.text = tokenizer.decode(result.tokens);
    }
    std::string stable = result.text;
    // Hold back bytes of a character that the next token may still complete.
    while (!final && ends_with_replacement(stable)) stable.resize(stable.size() - 3);
    if (options.on_text && stable.size() > emitted) options.on_text(std::string_view(stable).substr(emitted));
    emitted = std::max(emitted, stable.size());
  };
  stream(false);

  KVCache cache = options.prefix != nullptr ? *options.prefix : KVCache{};
  at::Tensor input = at::tensor(result.tokens, at::kLong).unsqueeze(0);
  while (static_cast<std::int64_t>(result.tokens.size()) <= steps) {  // the last token is never fed back
    ForwardOptions fo;
    fo.past = &cache;
    fo.return_cache = true;
    fo.last_logits_only = true;
    ForwardOutput out = model.forward(input, fo);
    cache = std::move(out.cache);
    at::Tensor logits = out.logits.select(0, 0).select(0, 0).to(at::kCPU);
    if (!at::isfinite(logits).all().item<bool>())
      throw_error(ErrorKind::kNumerical, "the logits at position {} contain NaN or Inf", result.tokens.size() - 1);
    const std::int64_t next = pick_next(logits, options, generator);
    result.tokens.push_back(next);
    if (std::find(stop.begin(), stop.end(), next) != stop.end()) break;
    stream(false);
    input = at::full({1, 1}, next, at::kLong);
  }
  stream(true);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace cushioncache
