#include "trainer/run/preemption.h"

#include <atomic>
#include <csignal>

namespace kd {

namespace {
// Lock-free, so safe in a handler; a compare-exchange because a process-directed signal may
// run the handler on any thread (OpenMP, OpenBLAS, MPI's), two at once.
std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void on_preemption(int sig) {
  int none = 0;
  g_signal.compare_exchange_strong(none, sig);  // the first one counts; later ones change nothing
}

void set_handler(void (*handler)(int)) {
  struct sigaction sa {};
  sa.sa_handler = handler;
  // Both blocked while either runs: otherwise, with SIGUSR1 and SIGTERM pending together, the
  // kernel stacks SIGTERM's frame on SIGUSR1's and SIGTERM's handler runs (and records) first.
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGTERM);
  sigaddset(&sa.sa_mask, SIGUSR1);
  sa.sa_flags = SA_RESTART;  // a read or write in progress is not interrupted
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
}
}  // namespace

void install_preemption_handlers() {
  set_handler(on_preemption);
  // a launcher may start us with them blocked; a signal pending since then is delivered now
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGUSR1);
  sigprocmask(SIG_UNBLOCK, &s, nullptr);
}

bool release_preemption_handlers() {
  set_handler(SIG_DFL);
  return preemption_requested();
}

bool preemption_requested() { return g_signal.load() != 0; }

const char* preemption_signal() {
  const int s = g_signal.load();
  return s == SIGTERM ? "SIGTERM" : s == SIGUSR1 ? "SIGUSR1" : nullptr;
}

}  // namespace kd
