// The one error type of the library: a kind (which decides the CLI exit code) and a
// message that names the file, tensor or field at fault, with context added on the way out.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace cushioncache {

enum class ErrorKind {
  kInvalidArgument,  // a bad value passed by the caller or on the command line
  kInvalidConfig,    // a config file or field that is missing, mistyped or out of range
  kNotFound,         // a file, tensor or token that does not exist
  kCorruptInput,     // a file whose bytes do not match its format
  kMismatch,         // inputs that are each valid but do not fit together
  kUnsupported,      // a valid input this build cannot handle
  kNumerical,        // NaN/Inf where a finite value is required
  kInterrupted,      // stopped by a signal; state was saved
  kInternal,         // a broken invariant of our own
};

const char* to_string(ErrorKind kind);

// Process exit code for an error of this kind (documented in docs/cli.md).
int exit_code(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string message);

  ErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }

  // Prepends where the error happened ("reading model.safetensors: ...").
  void add_context(const std::string& context);

  const char* what() const noexcept override { return message_.c_str(); }

 private:
  ErrorKind kind_;
  std::string message_;
};

template <typename... Args>
[[noreturn]] void throw_error(ErrorKind kind, fmt::format_string<Args...> format, Args&&... args) {
  throw Error(kind, fmt::format(format, std::forward<Args>(args)...));
}

// Runs fn(); an Error escaping it gets `context` prepended. Other exceptions (from
// LibTorch, the standard library) become kInternal errors with the same context, so a
// caller always sees where it happened.
template <typename Fn>
decltype(auto) with_context(const std::string& context, Fn&& fn) {
  try {
    return fn();
  } catch (Error& e) {
    e.add_context(context);
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kInternal, context + ": " + e.what());
  }
}

}  // namespace cushioncache
