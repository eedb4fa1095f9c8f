#include "cushioncache/core/memory_usage.h"

#include <cctype>
#include <cmath>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "cushioncache/core/error.h"

namespace cushioncache {

std::int64_t parse_byte_size(std::string_view text, std::string_view what) {
  const std::string s(text);
  std::size_t end = 0;
  double value = 0;
  try {
    value = std::stod(s, &end);
  } catch (const std::exception&) {
    end = 0;
  }
  std::string unit;
  for (std::size_t i = end; i < s.size(); ++i)
    if (!std::isspace(static_cast<unsigned char>(s[i]))) unit += static_cast<char>(std::toupper(static_cast<unsigned char>(s[i])));
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "K" || unit == "KB" || unit == "KIB") scale = 1024.0;
  else if (unit == "M" || unit == "MB" || unit == "MIB") scale = 1024.0 * 1024;
  else if (unit == "G" || unit == "GB" || unit == "GIB") scale = 1024.0 * 1024 * 1024;
  else if (unit == "T" || unit == "TB" || unit == "TIB") scale = 1024.0 * 1024 * 1024 * 1024;
  const double bytes = value * scale;
  if (end == 0 || scale == 0 || !std::isfinite(bytes) || bytes < 1 || bytes > 9.0e18)
    throw_error(ErrorKind::kInvalidArgument, "{} '{}' is not a positive memory size (e.g. 512MiB, 2GiB, 1.5G)", what, s);
  return static_cast<std::int64_t>(bytes);
}

std::string format_bytes(std::int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= 1024.0 * 1024 * 1024) return fmt::format("{:.2f} GiB", b / (1024.0 * 1024 * 1024));
  if (b >= 1024.0 * 1024) return fmt::format("{:.1f} MiB", b / (1024.0 * 1024));
  if (b >= 1024.0) return fmt::format("{:.1f} KiB", b / 1024.0);
  return fmt::format("{} B", bytes);
}

namespace {
// A "Name:   123456 kB" line of /proc/self/status, in bytes.
std::int64_t proc_status_bytes(const std::string& name) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(name, 0) == 0) return std::stoll(line.substr(name.size())) * 1024;
  }
  return -1;
}
}  // namespace

std::int64_t resident_bytes() { return proc_status_bytes("VmRSS:"); }

std::int64_t peak_resident_bytes() { return proc_status_bytes("VmHWM:"); }

bool reset_peak_resident() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  return static_cast<bool>(clear);
}

}  // namespace cushioncache
