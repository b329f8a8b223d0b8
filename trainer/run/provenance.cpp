#include "trainer/run/provenance.h"

#include <cblas.h>

#include <ctime>

#include <fmt/format.h>

#include "trainer/util/errors.h"

#ifndef KDTRAIN_VERSION
#define KDTRAIN_VERSION "unknown"
#endif

namespace kd {

Provenance runtime_provenance(int threads) {
  Provenance p;
  p["kdtrain_version"] = KDTRAIN_VERSION;
  p["compiler"] = fmt::format("gcc {}", __VERSION__);
  p["blas"] = openblas_get_config();
  p["blas_core"] = openblas_get_corename();
  p["threads"] = std::to_string(threads);
  p["world_size"] = "1";
  char buf[32];
  const std::time_t t = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  p["created_utc"] = buf;
  return p;
}

std::vector<std::string> check_provenance(const Provenance& saved, const Provenance& now,
                                          const std::string& path) {
  auto get = [](const Provenance& p, const std::string& k) {
    auto it = p.find(k);
    return it == p.end() ? std::string() : it->second;
  };
  for (const char* key : {"tokenizer_hash", "train_data_hash", "val_data_hash", "world_size"}) {
    const std::string a = get(saved, key), b = get(now, key);
    KD_CHECK_INPUT(a.empty() || b.empty() || a == b,
                   "{}: provenance field '{}' is {} in the checkpoint but {} now: resuming would train on "
                   "different {}",
                   path, key, a, b, std::string(key).find("data") != std::string::npos ? "data" : "inputs");
  }
  std::vector<std::string> warnings;
  for (const char* key : {"threads", "blas", "blas_core", "kdtrain_version"}) {
    const std::string a = get(saved, key), b = get(now, key);
    if (a != b) {
      warnings.push_back(fmt::format("{}: {} was '{}' and is '{}' now: the run continues correctly but "
                                     "not bit for bit as an uninterrupted run",
                                     path, key, a, b));
    }
  }
  return warnings;
}

}  // namespace kd
