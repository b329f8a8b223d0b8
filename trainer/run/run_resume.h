// The resume phase of a training run: everything a checkpoint restores (the model, this
// rank's shard of the Adam moments, the teacher a run trained itself, masks and the IMP
// round, quantizer state, the counters and the data sampler's place), each checked against
// the config so that an edited schedule or a changed dataset cannot shift a run silently.
#pragma once

#include <cstdint>
#include <string>

#include "data/batch_source.h"
#include "trainer/dist/comm.h"
#include "trainer/setup/provenance.h"
#include "trainer/setup/run_inputs.h"
#include "trainer/train/trainer.h"
#include "trainer/util/progress.h"

namespace kd {

// What the run's bookkeeping continues from (all zero for a fresh run).
struct ResumedRun {
  std::string metrics;  // the metrics.jsonl so far
  std::int64_t tokens_seen = 0;
  double time_offset = 0;  // seconds the run had taken
};

// Continues from in.resume_from when it is set; InputError naming the checkpoint when the
// config no longer describes it. `prov`: this run's provenance (differences are warned about).
ResumedRun resume_run(const RunInputs& in, Trainer& trainer, data::BatchSource& source, dist::Comm& dp,
                      const Provenance& prov, Progress& progress);

}  // namespace kd
