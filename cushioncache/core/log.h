// The one logger: leveled messages to stderr. The level comes from set_level() or, at
// start-up, from the CC_LOG_LEVEL environment variable (debug, info, warn, error, off).
#pragma once

#include <string_view>
#include <utility>

#include <fmt/format.h>

namespace cushioncache::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

void set_level(Level level);
Level level();
// Parses "debug" | "info" | "warn" | "error" | "off"; throws kInvalidArgument otherwise.
Level parse_level(std::string_view name);

void write(Level level, std::string_view message);

template <typename... Args>
void debug(fmt::format_string<Args...> format, Args&&... args) {
  if (level() <= Level::kDebug) write(Level::kDebug, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> format, Args&&... args) {
  if (level() <= Level::kInfo) write(Level::kInfo, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> format, Args&&... args) {
  if (level() <= Level::kWarn) write(Level::kWarn, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> format, Args&&... args) {
  if (level() <= Level::kError) write(Level::kError, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace cushioncache::log
