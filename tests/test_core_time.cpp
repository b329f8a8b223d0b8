// The core-time accounting of the checkpoint benchmark (trainer/util/core_time.h): /proc/stat's
// aggregate line read field by field (a fixture in the kernel's documented layout, proc(5)),
// and the window arithmetic against sums done by hand.
#include <gtest/gtest.h>

#include "trainer/util/core_time.h"

namespace kd::util {
namespace {

// proc(5): "cpu  user nice system idle iowait irq softirq steal guest guest_nice", then a line
// per core, which must not be taken for the aggregate
constexpr const char* kStat =
    "cpu  1200 30 310 5440 69 7 41 5 0 0\n"
    "cpu0 600 15 155 2720 34 3 20 2 0 0\n"
    "cpu1 600 15 155 2720 35 4 21 3 0 0\n"
    "intr 123 0 0\n"
    "ctxt 456\n";

TEST(CoreTime, ProcStatsAggregateLineIsReadFieldByField) {
  CoreClock c;
  ASSERT_TRUE(parse_proc_stat(kStat, c));
  EXPECT_TRUE(c.known);
  EXPECT_EQ(c.user, 1230u);         // user + nice
  EXPECT_EQ(c.kernel, 310u + 7 + 41);  // system + irq + softirq
  EXPECT_EQ(c.idle, 5440u + 69);    // idle + iowait
  EXPECT_EQ(c.steal, 5u);
}

TEST(CoreTime, ALineShortOfStealOrNoAggregateIsNotRead) {
  CoreClock c;
  EXPECT_FALSE(parse_proc_stat("cpu  1 2 3 4 5 6 7\n", c));         // no steal field (kernels < 2.6.11)
  EXPECT_FALSE(parse_proc_stat("cpu0 1 2 3 4 5 6 7 8 9 10\n", c));  // a core's line only
  EXPECT_FALSE(parse_proc_stat("cpu  1 2 x 4 5 6 7 8\n", c));
  EXPECT_FALSE(parse_proc_stat("", c));
  EXPECT_FALSE(c.known);
}

TEST(CoreTime, UnaccountedIsWallTimesCoresLessEveryField) {
  CoreClock a, b;
  ASSERT_TRUE(parse_proc_stat(kStat, a));
  ASSERT_TRUE(parse_proc_stat("cpu  1500 30 330 5450 69 7 41 10 0 0\n", b));
  a.cores = b.cores = 2;
  a.tick_s = b.tick_s = 0.01;
  a.wall_s = 100.0;
  b.wall_s = 102.0;  // 4 core-seconds
  const CoreUse u = core_use(a, b);
  EXPECT_NEAR(u.user, 3.00, 1e-12);
  EXPECT_NEAR(u.kernel, 0.20, 1e-12);
  EXPECT_NEAR(u.idle, 0.10, 1e-12);
  EXPECT_NEAR(u.steal, 0.05, 1e-12);
  EXPECT_NEAR(u.unaccounted, 4.0 - 3.35, 1e-12);
  EXPECT_NEAR(u.taken(), 0.70, 1e-12);

  // not read: nothing is claimed
  CoreClock none = b;
  none.known = false;
  EXPECT_EQ(core_use(a, none).unaccounted, 0.0);
}

TEST(CoreTime, BeyondSubtractsTheBaseRatesOverTheWindow) {
  const CoreUse window{3.0, 0.5, 0.1, 0.0, 1.2};  // 2 s
  const CoreUse base{1.9, 0.02, 0.08, 0.0, 0.0};  // 1 s of plain steps
  const CoreUse extra = core_use_beyond(window, 2.0, base, 1.0);
  EXPECT_NEAR(extra.user, 3.0 - 3.8, 1e-12);
  EXPECT_NEAR(extra.kernel, 0.5 - 0.04, 1e-12);
  EXPECT_NEAR(extra.idle, 0.1 - 0.16, 1e-12);
  EXPECT_NEAR(extra.unaccounted, 1.2, 1e-12);
}

TEST(CoreTime, ThisMachinesClockReadsAndNeverRunsBack) {
  const CoreClock a = read_core_clock();
#ifdef __linux__
  ASSERT_TRUE(a.known) << "/proc/stat not read on Linux";
#endif
  EXPECT_GE(a.cores, 1);
  EXPECT_GT(a.tick_s, 0.0);
  const CoreClock b = read_core_clock();
  EXPECT_GE(b.wall_s, a.wall_s);
  EXPECT_GE(b.user, a.user);
  EXPECT_GE(b.kernel, a.kernel);
  EXPECT_GE(b.idle, a.idle);
}

}  // namespace
}  // namespace kd::util
