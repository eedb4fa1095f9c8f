// Progress of long work (evaluation, calibration, search) on stderr: a redrawn bar with
// rate and ETA on a terminal, a line every 10% (or 30 s) otherwise, nothing when the log
// level is above info.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace cushioncache {

class Progress {
 public:
  Progress(std::string label, std::int64_t total, std::string unit = "items");
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void advance(std::int64_t n = 1);
  // Short status shown after the counters, e.g. "ppl 12.31".
  void set_status(std::string status);
  // Prints the final state once (also done by the destructor).
  void finish();

  std::int64_t done() const { return done_; }
  double elapsed_seconds() const;

 private:
  void draw(bool final);

  std::string label_;
  std::int64_t total_;
  std::string unit_;
  std::string status_;
  std::int64_t done_ = 0;
  bool enabled_;
  bool terminal_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  std::int64_t last_reported_decile_ = -1;
  std::int64_t last_reported_done_ = -1;
};

}  // namespace cushioncache
