// Cooperative stopping of long work on Ctrl-C (SIGINT) or SIGTERM: while a guard is alive,
// the signal sets a flag instead of killing the process; loops poll it between units of
// work, save their state and stop with ErrorKind::kInterrupted (exit code 130). A second
// Ctrl-C falls through to the default action.
#pragma once

namespace cushioncache {

class InterruptGuard {
 public:
  InterruptGuard();
  ~InterruptGuard();
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;
};

bool interrupt_requested();
// Throws kInterrupted (naming `what`) if a stop was requested.
void throw_if_interrupted(const char* what);

}  // namespace cushioncache
