#include "cushioncache/analysis/inspect.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cushioncache/analysis/svg_chart.h"
#include "cushioncache/core/error.h"
#include "cushioncache/core/files.h"

namespace cushioncache {
namespace fs = std::filesystem;

namespace {

void write_text(const fs::path& path, const std::string& text) {
  write_file_atomically(path, [&](std::ostream& out) { out << text; });
}

std::vector<double> layers_of(const ActivationReport& r, Site site, double SiteStats::*field) {
  std::vector<double> v;
  for (const auto& s : r.sites)
    if (s.site == site) v.push_back(s.*field);
  return v;
}

std::vector<double> range(std::size_t n, double start = 0) {
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = start + static_cast<double>(i);
  return v;
}

}  // namespace

Inspection inspect_model(CausalLM& model, const Tokenizer& tokenizer, const InspectOptions& options, const KVCache* prefix) {
  const std::int64_t prefix_len = prefix != nullptr ? prefix->length() : 0;
  const std::int64_t room = room_after_prefix(model.config().max_position_embeddings, prefix_len);
  const SampledWindows plain = sample_text_windows(tokenizer, options.windows, room, BosPolicy::kAuto);
  StatsOptions stats;
  stats.first_keys = options.first_keys;

  Inspection out;
  out.data_description = plain.description;
  out.token_layer = options.token_layer >= 0 ? options.token_layer : static_cast<int>(model.config().num_layers) - 1;
  if (out.token_layer >= model.config().num_layers)
    throw_error(ErrorKind::kInvalidArgument, "token layer {} does not exist (the model has {} layers)", out.token_layer,
                model.config().num_layers);
  out.prefix_label = options.prefix_label;
  out.without_prefix = collect_activation_stats(model, plain.sequences, nullptr, stats);
  if (prefix != nullptr) {
    // The same windows without the leading BOS: the prefix takes its place.
    const SampledWindows text_only = sample_text_windows(tokenizer, options.windows, room, BosPolicy::kNo);
    out.with_prefix = collect_activation_stats(model, text_only.sequences, prefix, stats);
  }
  return out;
}

void write_inspection(const Inspection& in, const nlohmann::json& model_description, const fs::path& folder) {
  fs::create_directories(folder);
  nlohmann::json j = {{"model", model_description}, {"data", in.data_description}, {"without_prefix", to_json(in.without_prefix)}};
  if (in.with_prefix) j["with_prefix"] = to_json(*in.with_prefix), j["prefix"] = in.prefix_label;
  write_text(folder / "stats.json", j.dump(2) + "\n");

  std::vector<std::pair<std::string, const ActivationReport*>> runs = {{"no prefix", &in.without_prefix}};
  if (in.with_prefix) runs.emplace_back(in.prefix_label, &*in.with_prefix);

  std::string sites = "run,layer,site,top1,top10pct,median,top1_sample,top1_position,top1_channel\n";
  std::string attention = "run,layer,key_position,mass\n";
  std::string heads = "run,layer,head,mass_on_key0\n";
  std::string tokens = "run,layer,position,max_abs\n";
  for (const auto& [label, r] : runs) {
    for (const auto& s : r->sites)
      sites += fmt::format("{},{},{},{:.6g},{:.6g},{:.6g},{},{},{}\n", label, s.layer, site_name(s.site), s.top1, s.top10pct, s.median,
                           s.top1_sample, s.top1_position, s.top1_channel);
    for (const auto& a : r->attention)
      for (std::size_t k = 0; k < a.mass_on_first.size(); ++k) attention += fmt::format("{},{},{},{:.6g}\n", label, a.layer, k, a.mass_on_first[k]);
    for (const auto& a : r->attention)
      for (std::size_t h = 0; h < a.head_mass_on_key0.size(); ++h) heads += fmt::format("{},{},{},{:.6g}\n", label, a.layer, h, a.head_mass_on_key0[h]);
    for (std::size_t l = 0; l < r->token_max.size(); ++l)
      for (std::size_t t = 0; t < r->token_max[l].size(); ++t) tokens += fmt::format("{},{},{},{:.6g}\n", label, l, t, r->token_max[l][t]);
  }
  write_text(folder / "sites.csv", sites);
  write_text(folder / "attention.csv", attention);
  write_text(folder / "attention_heads.csv", heads);
  write_text(folder / "token_max.csv", tokens);

  // Per-layer magnitudes at the block input: outliers show as a top-1 far above the median.
  std::vector<ChartSeries> magnitudes;
  for (const auto& [label, r] : runs) {
    const auto top1 = layers_of(*r, Site::kBlockInput, &SiteStats::top1);
    magnitudes.push_back({"top-1 |x|, " + label, range(top1.size()), top1, label != "no prefix"});
    const auto median = layers_of(*r, Site::kBlockInput, &SiteStats::median);
    magnitudes.push_back({"median |x|, " + label, range(median.size()), median, label != "no prefix"});
  }
  ChartOptions m;
  m.title = "Residual stream magnitude per layer (block input, text tokens)";
  m.x_label = "layer";
  m.y_label = "|activation|";
  m.log_y = true;
  write_text(folder / "magnitudes.svg", line_chart_svg(magnitudes, m));

  // Token-wise maxima at one layer: outlier tokens (BOS, first delimiter) stand out.
  std::vector<ChartSeries> token_series;
  for (const auto& [label, r] : runs) {
    if (r->token_max.size() <= static_cast<std::size_t>(in.token_layer)) continue;
    const auto& v = r->token_max[static_cast<std::size_t>(in.token_layer)];
    token_series.push_back({label, range(v.size()), v, label != "no prefix"});
  }
  ChartOptions t;
  t.title = fmt::format("Largest |activation| of each token, block input of layer {} (first sample)", in.token_layer);
  t.x_label = "token position (after any cached prefix)";
  t.y_label = "max |x| over hidden dims";
  t.log_y = true;
  write_text(folder / "token_max.svg", line_chart_svg(token_series, t));

  // Attention sinks: mass the text tokens put on the first key positions, per layer.
  std::vector<ChartSeries> sink_series;
  for (const auto& [label, r] : runs) {
    if (r->attention.empty()) continue;
    const std::size_t k = r->attention.front().mass_on_first.size();
    for (std::size_t key = 0; key < k; ++key) {
      std::vector<double> v;
      for (const auto& a : r->attention) v.push_back(a.mass_on_first[key]);
      sink_series.push_back({fmt::format("key {}, {}", key, label), range(v.size()), v, label != "no prefix"});
    }
  }
  ChartOptions s;
  s.title = "Attention on the first key positions (mean over heads and text queries)";
  s.x_label = "layer";
  s.y_label = "attention probability";
  write_text(folder / "attention_sinks.svg", line_chart_svg(sink_series, s));

  // The same per head, key 0 only: which heads of which layers are sinks.
  std::vector<HeatmapPanel> head_panels;
  for (const auto& [label, r] : runs) {
    HeatmapPanel panel{label, {}};
    for (const auto& a : r->attention) panel.values.push_back(a.head_mass_on_key0);
    head_panels.push_back(std::move(panel));
  }
  HeatmapOptions h;
  h.title = "Attention on key position 0 per layer and head (mean over text queries)";
  h.row_label = "layer";
  h.column_label = "head";
  h.value_label = "attention probability";
  write_text(folder / "attention_heads.svg", heatmap_svg(head_panels, h));
}

}  // namespace cushioncache
