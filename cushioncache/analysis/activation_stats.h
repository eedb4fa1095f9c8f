// Activation statistics over text tokens (prefix and padding left out): per layer and
// site the largest |x| with its position and hidden dim, the top-10% quantile and the
// median of |x|, per-token maxima, and per layer the attention mass on the first key
// positions (the attention-sink score). These show where outliers sit and what a prefix
// does to them.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cushioncache/model/causal_lm.h"

namespace cushioncache {

struct SiteStats {
  int layer = 0;
  Site site = Site::kBlockInput;
  double top1 = 0;         // max |x| over every text token of every sample
  double top10pct = 0;     // |x| at the 90th percentile (the paper's "top-10%"), mean over samples
  double median = 0;       // median |x|, mean over samples
  std::int64_t top1_sample = 0;
  std::int64_t top1_position = 0;  // position in the input sequence (after any cached prefix)
  std::int64_t top1_channel = 0;   // hidden dim (channel) of the largest value
};

struct AttentionSinkStats {
  int layer = 0;
  // Mean attention probability (over heads and text queries) on key positions 0..k-1;
  // with a cached prefix these are the prefix positions.
  std::vector<double> mass_on_first;
  // Per head: mean attention probability (over text queries) on key position 0. A sink is
  // often a few heads, which the mean over heads hides.
  std::vector<double> head_mass_on_key0;
};

struct ActivationReport {
  std::int64_t samples = 0;
  std::int64_t seq_len = 0;
  std::int64_t prefix_length = 0;
  std::vector<SiteStats> sites;                // layer-major, sites in all_sites() order
  std::vector<AttentionSinkStats> attention;   // one per layer
  std::vector<std::vector<double>> token_max;  // [layer][position]: max |block input| per token, first sample
};

struct StatsOptions {
  std::vector<Site> sites = {Site::kBlockInput, Site::kAttnInput, Site::kOProjInput, Site::kMlpInput, Site::kDownProjInput};
  std::int64_t first_keys = 4;  // key positions whose attention mass is reported
};

// Runs the samples (equal-length token sequences) through the model, behind the prefix
// when given. Throws kNumerical naming layer and site on NaN/Inf activations.
ActivationReport collect_activation_stats(CausalLM& model, const std::vector<std::vector<std::int64_t>>& samples, const KVCache* prefix,
                                          const StatsOptions& options = {});

// The paper's Table 5 measure: top-1 / top-10% / median |x| at the input of the last block.
const SiteStats& last_block_input(const ActivationReport& report);

nlohmann::json to_json(const ActivationReport& report);

}  // namespace cushioncache
