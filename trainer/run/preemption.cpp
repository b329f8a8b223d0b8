#include "trainer/run/preemption.h"

#include <csignal>

namespace kd {

namespace {
volatile std::sig_atomic_t g_signal = 0;
extern "C" void on_preemption(int sig) {
  if (g_signal == 0) g_signal = sig;  // the first one counts; later ones change nothing
}
}  // namespace

void install_preemption_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_preemption;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // a read or write in progress is not interrupted
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
}

bool preemption_requested() { return g_signal != 0; }

const char* preemption_signal() {
  return g_signal == SIGTERM ? "SIGTERM" : g_signal == SIGUSR1 ? "SIGUSR1" : nullptr;
}

}  // namespace kd
