// The resume phase of a training run: everything a checkpoint restores (the model, this
// rank's shard of the Adam moments, the teacher a run trained itself, masks and the IMP
// round, quantizer state, the counters and the data sampler's place), each checked against
// the config so that an edited schedule or a changed dataset cannot shift a run silently.
#pragma once

#include <cstdint>
#include <string>

#include "data/batch_source.h"
#include "trainer/dist/comm.h"
#include "trainer/run/run_groups.h"
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
// Every read checks its bytes against the manifest as it goes (one pass over the file); when
// any student rank finds damage (ckpt::DamagedCheckpoint), all of them fall back to the next
// of in.resume_fallbacks and read it instead, saying why. A fallback must hold the same kinds
// of state (masks, quantizer state) as the damaged file, whose read may have loaded part of
// them; else InputError saying to move the damaged file aside.
ResumedRun resume_run(const RunInputs& in, Trainer& trainer, data::BatchSource& source, const RunGroups& groups,
                      const Provenance& prov, Progress& progress);

}  // namespace kd
