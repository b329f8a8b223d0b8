#include "trainer/util/core_time.h"

#include <unistd.h>

#include <array>
#include <charconv>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

namespace kd::util {

bool parse_proc_stat(std::string_view text, CoreClock& c) {
  // the aggregate line: "cpu  user nice system idle iowait irq softirq steal guest guest_nice"
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t end = std::min(text.find('\n', at), text.size());
    const std::string_view line = text.substr(at, end - at);
    at = end + 1;
    if (line.size() < 4 || line.substr(0, 4) != "cpu ") continue;
    std::array<std::uint64_t, 8> f{};
    std::size_t i = 0, p = 3;
    while (i < f.size()) {
      while (p < line.size() && line[p] == ' ') ++p;
      if (p >= line.size()) return false;
      const auto [next, ec] = std::from_chars(line.data() + p, line.data() + line.size(), f[i]);
      if (ec != std::errc{}) return false;
      p = std::size_t(next - line.data());
      ++i;
    }
    c.user = f[0] + f[1];
    c.kernel = f[2] + f[5] + f[6];
    c.idle = f[3] + f[4];
    c.steal = f[7];
    c.known = true;
    return true;
  }
  return false;
}

CoreClock read_core_clock() {
  CoreClock c;
  std::ifstream in("/proc/stat");
  if (in) {
    std::ostringstream text;
    text << in.rdbuf();
    parse_proc_stat(text.str(), c);
  }
  c.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  const long hz = ::sysconf(_SC_CLK_TCK), n = ::sysconf(_SC_NPROCESSORS_ONLN);
  c.tick_s = hz > 0 ? 1.0 / double(hz) : 0.01;
  c.cores = n > 0 ? int(n) : 1;
  return c;
}

CoreUse core_use(const CoreClock& from, const CoreClock& to) {
  CoreUse u;
  if (!from.known || !to.known) return u;
  auto delta = [&](std::uint64_t a, std::uint64_t b) { return b >= a ? double(b - a) * to.tick_s : 0.0; };
  u.user = delta(from.user, to.user);
  u.kernel = delta(from.kernel, to.kernel);
  u.idle = delta(from.idle, to.idle);
  u.steal = delta(from.steal, to.steal);
  u.unaccounted = (to.wall_s - from.wall_s) * to.cores - (u.user + u.kernel + u.idle + u.steal);
  return u;
}

CoreUse core_use_beyond(const CoreUse& use, double wall_s, const CoreUse& base, double base_wall_s) {
  const double k = base_wall_s > 0 ? wall_s / base_wall_s : 0.0;
  return {use.user - k * base.user, use.kernel - k * base.kernel, use.idle - k * base.idle,
          use.steal - k * base.steal, use.unaccounted - k * base.unaccounted};
}

}  // namespace kd::util
