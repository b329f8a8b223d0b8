#include "trainer/run/run_groups.h"

#include "base/errors.h"

namespace kd {

void RunGroups::set_timeout(dist::Comm& world, double seconds) const {
  world.set_timeout(seconds);
  dp->set_timeout(seconds);
  if (tp_group) tp_group->set_timeout(seconds);
}

RunGroups make_run_groups(const Config& cfg, dist::Comm& world) {
  RunGroups g;
  g.layout = teacher_ranks(cfg, world.size());
  const int tpn = cfg.parallel.tensor_parallel;
  KD_CHECK_INPUT(g.layout.students() % tpn == 0, "parallel.tensor_parallel {} does not divide the job's {} ranks", tpn,
                 g.layout.students());
  KD_CHECK_INPUT(cfg.train.batch_size >= g.layout.students() / tpn,
                 "train.batch_size ({}) is smaller than the {} data-parallel ranks: every rank needs at least one "
                 "sequence of each micro-batch", cfg.train.batch_size, g.layout.students() / tpn);
  g.dp = &world;
  if (g.layout.teachers > 0) {
    g.teacher_rank = g.layout.is_teacher(world.rank());
    g.student_group = world.split(g.teacher_rank ? 1 : 0, world.rank(),
                                  g.teacher_rank ? "teacher group" : "data-parallel group");
    g.student_group->set_timeout(cfg.parallel.watchdog_min_s);
    if (g.teacher_rank) return g;
    g.dp = g.student_group.get();
  }
  if (tpn > 1) {
    g.tp_group = world.split(world.rank() / tpn, world.rank(), "tensor-parallel group");
    g.dp_across = world.split(world.rank() % tpn, world.rank(), "data-parallel group");
    g.tp_group->set_timeout(cfg.parallel.watchdog_min_s);
    g.dp_across->set_timeout(cfg.parallel.watchdog_min_s);
    g.dp = g.dp_across.get();
  }
  return g;
}

}  // namespace kd
