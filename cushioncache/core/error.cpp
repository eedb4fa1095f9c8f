#include "cushioncache/core/error.h"

namespace cushioncache {

const char* to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidArgument: return "invalid argument";
    case ErrorKind::kInvalidConfig: return "invalid config";
    case ErrorKind::kNotFound: return "not found";
    case ErrorKind::kCorruptInput: return "corrupt input";
    case ErrorKind::kMismatch: return "mismatch";
    case ErrorKind::kUnsupported: return "unsupported";
    case ErrorKind::kNumerical: return "numerical error";
    case ErrorKind::kInterrupted: return "interrupted";
    case ErrorKind::kInternal: return "internal error";
  }
  return "error";
}

int exit_code(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidArgument:
    case ErrorKind::kInvalidConfig: return 2;
    case ErrorKind::kNotFound:
    case ErrorKind::kCorruptInput:
    case ErrorKind::kMismatch: return 3;
    case ErrorKind::kUnsupported: return 4;
    case ErrorKind::kNumerical: return 5;
    case ErrorKind::kInterrupted: return 130;
    case ErrorKind::kInternal: return 1;
  }
  return 1;
}

Error::Error(ErrorKind kind, std::string message)
    : std::runtime_error(message), kind_(kind), message_(std::move(message)) {}

void Error::add_context(const std::string& context) { message_ = context + ": " + message_; }

}  // namespace cushioncache
