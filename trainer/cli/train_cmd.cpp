// `kdtrain train` and `kdtrain distill`: the inputs gathered and checked (nothing written
// before they are), the backend started before any work, then the run's phases
// (trainer/run/training_run.h). Launched by mpirun / srun, every rank runs this.
#include <fmt/format.h>

#include <memory>

#include "trainer/cli/commands.h"
#include "trainer/dist/comm.h"
#include "trainer/run/preemption.h"
#include "trainer/run/training_run.h"
#include "trainer/setup/backend.h"
#include "trainer/setup/provenance.h"
#include "trainer/setup/run_inputs.h"
#include "trainer/train/trainer.h"

namespace kd::cli {

int run_train(const TrainCommand& cmd) {
  install_preemption_handlers();  // again (idempotent): main() installed them first thing
  const std::unique_ptr<dist::Comm> world = dist::make_world_comm();
  RunInputs in = gather_inputs(cmd, true, world->rank(), world->size());
  const Config& cfg = in.cfg;
  const std::string backend = start_backend(cfg, node_local_rank());  // before any work
  if (world->rank() == 0 && !backend.empty()) fmt::print("{}\n", backend);
  world->set_timeout(cfg.parallel.watchdog_min_s);
  const int threads = set_threads(cfg.train.threads, "train.threads");
  Provenance prov = runtime_provenance(threads);
  prov.insert(in.provenance.begin(), in.provenance.end());
  prov["world_size"] = std::to_string(world->size());
  if (in.teacher) prov["teacher_checkpoint"] = in.teacher->path;
  return run_training(in, *world, threads, prov);
}

}  // namespace kd::cli
