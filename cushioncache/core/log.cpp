#include "cushioncache/core/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

#include "cushioncache/core/error.h"

namespace cushioncache::log {
namespace {

Level initial_level() {
  const char* env = std::getenv("CC_LOG_LEVEL");
  if (env == nullptr || *env == '\0') return Level::kInfo;
  try {
    return parse_level(env);
  } catch (const Error&) {
    std::fprintf(stderr, "[warn] CC_LOG_LEVEL=%s is not one of debug|info|warn|error|off; using info\n", env);
    return Level::kInfo;
  }
}

std::atomic<Level>& current_level() {
  static std::atomic<Level> level{initial_level()};
  return level;
}

const char* tag(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
    case Level::kOff: break;
  }
  return "";
}

}  // namespace

void set_level(Level level) { current_level().store(level); }
Level level() { return current_level().load(std::memory_order_relaxed); }

Level parse_level(std::string_view name) {
  if (name == "debug") return Level::kDebug;
  if (name == "info") return Level::kInfo;
  if (name == "warn") return Level::kWarn;
  if (name == "error") return Level::kError;
  if (name == "off") return Level::kOff;
  throw_error(ErrorKind::kInvalidArgument, "log level '{}' is not one of debug|info|warn|error|off", name);
}

void write(Level level, std::string_view message) {
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  std::fprintf(stderr, "[%s] %.*s\n", tag(level), static_cast<int>(message.size()), message.data());
  std::fflush(stderr);
}

}  // namespace cushioncache::log
