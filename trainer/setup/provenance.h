// The provenance block of a checkpoint: what produced it. Fields that change results
// (tokenizer, training data, model shape) must match on resume; fields that only break
// bit-exactness (threads, BLAS build, kdtrain version) give a warning.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace kd {

using Provenance = std::map<std::string, std::string>;

// kdtrain_version, compiler, blas, blas_core, threads, world_size, created_utc, library versions.
Provenance runtime_provenance(int threads);

// Compares a checkpoint's provenance with the current one. Throws InputError naming the
// first result-changing field that differs; returns warnings for the others.
std::vector<std::string> check_provenance(const Provenance& saved, const Provenance& now,
                                          const std::string& checkpoint_path);

}  // namespace kd
