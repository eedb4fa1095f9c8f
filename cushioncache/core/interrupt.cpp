#include "cushioncache/core/interrupt.h"

#include <atomic>
#include <csignal>

#include "cushioncache/core/error.h"

namespace cushioncache {
namespace {

std::atomic<bool> g_requested{false};
std::atomic<int> g_guards{0};
struct sigaction g_previous_int {}, g_previous_term {};

extern "C" void on_signal(int signal) {
  if (g_requested.exchange(true)) {  // the second time: stop now
    std::signal(signal, SIG_DFL);
    std::raise(signal);
  }
}

}  // namespace

InterruptGuard::InterruptGuard() {
  if (g_guards.fetch_add(1) > 0) return;
  g_requested = false;
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, &g_previous_int);
  sigaction(SIGTERM, &action, &g_previous_term);
}

InterruptGuard::~InterruptGuard() {
  if (g_guards.fetch_sub(1) > 1) return;
  sigaction(SIGINT, &g_previous_int, nullptr);
  sigaction(SIGTERM, &g_previous_term, nullptr);
}

bool interrupt_requested() { return g_requested.load(); }

void throw_if_interrupted(const char* what) {
  if (interrupt_requested()) throw_error(ErrorKind::kInterrupted, "{} stopped by a signal; its state is saved, and resuming continues from it", what);
}

}  // namespace cushioncache
