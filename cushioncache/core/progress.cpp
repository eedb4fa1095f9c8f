#include "cushioncache/core/progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

#include "cushioncache/core/log.h"

namespace cushioncache {
namespace {

std::string clock_text(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "--:--";
  const auto s = static_cast<std::int64_t>(seconds + 0.5);
  return s >= 3600 ? fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60) : fmt::format("{}:{:02d}", s / 60, s % 60);
}

}  // namespace

Progress::Progress(std::string label, std::int64_t total, std::string unit)
    : label_(std::move(label)), total_(total), unit_(std::move(unit)),
      enabled_(log::level() <= log::Level::kInfo), terminal_(::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

Progress::~Progress() { finish(); }

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::advance(std::int64_t n) {
  done_ += n;
  draw(false);
}

void Progress::set_status(std::string status) { status_ = std::move(status); }

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
  const double fraction = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : -1.0;
  const std::string counters = fmt::format("{}/{} {} | {:.1f} {}/s | {} elapsed, {} left{}{}", done_, total_, unit_, rate, unit_,
                                           clock_text(elapsed), clock_text(eta), status_.empty() ? "" : " | ", status_);
  if (terminal_) {
    // Redraw at most ten times a second; always draw the final state.
    if (!final && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(fraction * kWidth);
    std::fprintf(stderr, "\r%s [%s%s] %s\033[K%s", label_.c_str(), std::string(filled, '#').c_str(),
                 std::string(kWidth - filled, '.').c_str(), counters.c_str(), final ? "\n" : "");
    std::fflush(stderr);
    return;
  }
  // Not a terminal (CI, log files): one line per 10% or per 30 s, and the final one.
  const std::int64_t decile = static_cast<std::int64_t>(fraction * 10);
  if (done_ == last_reported_done_) return;
  if (!final && decile == last_reported_decile_ && now - last_draw_ < std::chrono::seconds(30)) return;
  last_reported_done_ = done_;
  last_reported_decile_ = decile;
  last_draw_ = now;
  log::info("{}: {}", label_, counters);
}

}  // namespace cushioncache
