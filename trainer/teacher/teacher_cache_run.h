// Teacher caches at the run level: the identity a run's teacher, tokenizer and data give a
// cache, writing one (the work of `kdtrain cache-teacher`, trainer/cli/cache_teacher_cmd.cpp:
// the teacher once over a run's training stream), and opening a distill run's teacher.cache
// with every check that binds it to the run.
#pragma once

#include <memory>
#include <string>

#include "trainer/dist/comm.h"
#include "trainer/distill/teacher_cache.h"
#include "trainer/setup/run_inputs.h"

namespace kd {

// FNV-1a of the parameters' bytes, as hex.
std::string parameters_hash(const float* params, std::size_t n);
CacheIdentity run_cache_identity(const Config& cfg, const Provenance& inputs, const std::string& teacher_hash,
                                 int kd_vocab);

struct RunCache {
  std::shared_ptr<const TeacherCache> cache;
  int temperature_index = 0;  // distill.temperature among the cache's temperatures
};
// InputError naming what does not match: the identity field (teacher, tokenizer, data,
// seq_len, seed), a temperature the cache does not hold, too few sequences for the run.
RunCache open_run_cache(const RunInputs& in);

// The teacher over the run's training stream into out_dir (which holds no other cache): under
// mpirun each rank writes the shard of the micro-batches it owns. Collective over world.
void write_teacher_cache(const RunInputs& in, dist::Comm& world, const std::string& out_dir, int threads);

}  // namespace kd
