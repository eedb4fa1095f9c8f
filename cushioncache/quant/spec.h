// What one quantizer does: bit width, symmetric or asymmetric, granularity, static or
// dynamic range, and the estimator of static ranges. Written as a short string
// ("a8-per-tensor-static-asym", "w8-per-channel-sym", "a4-per-group128-dynamic-sym",
// "a8-per-tensor-static-asym-pct99.9") or as a YAML mapping.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cushioncache {

enum class QuantRole { kActivation, kWeight };
enum class Granularity { kPerTensor, kPerToken, kPerChannel, kPerGroup };
enum class RangeMode { kStatic, kDynamic };
enum class RangeEstimator { kMinMax, kEma, kPercentile };

struct QuantSpec {
  QuantRole role = QuantRole::kActivation;
  int bits = 16;  // 2..8; 16 = off
  bool symmetric = false;
  Granularity granularity = Granularity::kPerTensor;
  std::int64_t group_size = 0;  // per-group: consecutive channels sharing one range
  RangeMode mode = RangeMode::kDynamic;
  RangeEstimator estimator = RangeEstimator::kMinMax;
  double ema_decay = 0.9;     // kEma: range = decay * range + (1 - decay) * batch range
  double percentile = 99.99;  // kPercentile: |x| quantile taken as the range, per batch, averaged

  bool enabled() const { return bits < 16; }
  // Throws kInvalidConfig naming the field.
  void validate() const;
  // Canonical short form, e.g. "a8-per-tensor-static-asym-minmax"; "off" when disabled.
  std::string to_string() const;
};

// Short form, as above. Defaults: activations asymmetric and dynamic, weights symmetric;
// "off" (or "16") disables. kInvalidConfig names the offending part.
QuantSpec parse_quant_spec(std::string_view text, QuantRole role);

const char* to_string(Granularity g);

}  // namespace cushioncache
