// The machine's core time over a window, as its kernel accounts it (/proc/stat's `cpu` line,
// all online cores), and the part nobody in the machine accounted for.
//
// Why: on a VM whose host runs work for the guest (the disk's emulation) on the cores it lends
// it, and does not report that time as steal, the guest's cores simply stop for a while: the
// time shows in no field. Wall time × cores less every field is then the cores' time the host
// took. On the VMs kdtrain is benchmarked on, a bare 2 GB O_DIRECT write leaves ~1.1 core-s of
// it, the most of what the write costs a training that uses every core (the checkpoint
// benchmark reports it). On bare metal it is 0 within a tick per core.
#pragma once

#include <cstdint>
#include <string_view>

namespace kd::util {

// One reading. Ticks are the kernel's USER_HZ.
struct CoreClock {
  double wall_s = 0;  // steady clock
  std::uint64_t user = 0;    // user + nice (guests' time included)
  std::uint64_t kernel = 0;  // system + irq + softirq
  std::uint64_t idle = 0;    // idle + iowait
  std::uint64_t steal = 0;   // the host's time as the host reports it
  double tick_s = 0.01;      // seconds per tick
  int cores = 0;             // online cores
  bool known = false;        // /proc/stat was there and read
};

// Core-seconds used over a window, by kind.
struct CoreUse {
  double user = 0, kernel = 0, idle = 0, steal = 0;
  double unaccounted = 0;  // wall × cores less the fields above (a tick per core either way)
  double taken() const { return steal + unaccounted; }  // what the host took, reported or not
};

// The `cpu` line of a /proc/stat text into `c`'s ticks and `known` (the rest left alone);
// false if it is not there or short of the fields up to steal.
bool parse_proc_stat(std::string_view text, CoreClock& c);

// Now (known = false where /proc/stat cannot be read: not Linux).
CoreClock read_core_clock();

// From one reading to a later one (zeros if either is not known).
CoreUse core_use(const CoreClock& from, const CoreClock& to);

// `use` less what a window of `base`'s rates would have used in `wall_s`: what a window's
// work (a checkpoint's write) added over the steps around it.
CoreUse core_use_beyond(const CoreUse& use, double wall_s, const CoreUse& base, double base_wall_s);

}  // namespace kd::util
