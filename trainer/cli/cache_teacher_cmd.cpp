// `kdtrain cache-teacher --config X --out DIR`: the inputs of the distill run the cache is
// for, checked; the output directory made (an earlier cache in it only replaced with
// --overwrite); then the teacher's top-k logits written (trainer/teacher/teacher_cache_run.h).
#include <filesystem>
#include <memory>

#include "base/errors.h"
#include "trainer/cli/commands.h"
#include "trainer/cli/output_path.h"
#include "trainer/dist/comm.h"
#include "trainer/setup/run_inputs.h"
#include "trainer/teacher/teacher_cache_run.h"
#include "trainer/train/trainer.h"

namespace kd::cli {

namespace fs = std::filesystem;

int run_cache_teacher(const TrainCommand& cmd, const std::string& out_dir) {
  const std::unique_ptr<dist::Comm> world = dist::make_world_comm();
  const bool leader = world->rank() == 0;
  const RunInputs in = gather_inputs(cmd, false);
  const Config& cfg = in.cfg;
  KD_CHECK_INPUT(cfg.has_teacher && in.teacher, "cache-teacher: the config needs teacher.checkpoint (the teacher to "
                 "run)");
  KD_CHECK_INPUT(cfg.teacher.cache.empty(), "cache-teacher: the config reads a cache (teacher.cache); remove it");
  refuse_input_as_output("cache-teacher", out_dir, {cfg.teacher.checkpoint, cfg.data.train, cfg.data.val});
  world->set_timeout(cfg.parallel.watchdog_min_s);
  const int threads = set_threads(cfg.train.threads, "train.threads");
  // the output directory: new, or without an earlier cache in it
  if (fs::exists(out_dir)) {
    KD_CHECK_INPUT(fs::is_directory(out_dir), "cache-teacher --out {}: not a directory", out_dir);
    for (const auto& e : fs::directory_iterator(out_dir)) {
      const std::string n = e.path().filename().string();
      if (n.rfind("teacher-cache-", 0) != 0) continue;
      KD_CHECK_INPUT(cmd.overwrite, "cache-teacher --out {}: it already holds a cache ({}); give --overwrite to "
                     "replace it", out_dir, n);
    }
  }
  world->barrier();
  if (leader) {
    fs::create_directories(out_dir);
    for (const auto& e : fs::directory_iterator(out_dir)) {
      if (e.path().filename().string().rfind("teacher-cache-", 0) == 0) fs::remove(e.path());
    }
  }
  world->barrier();
  write_teacher_cache(in, *world, out_dir, threads);
  return 0;
}

}  // namespace kd::cli
