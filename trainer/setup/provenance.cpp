#include "trainer/setup/provenance.h"

#include <cblas.h>
#include <hdf5.h>

#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/errors.h"

#ifndef KDTRAIN_VERSION
#define KDTRAIN_VERSION "unknown"
#endif

namespace kd {

Provenance runtime_provenance(int threads) {
  unsigned h5_major = 0, h5_minor = 0, h5_release = 0;
  H5get_libversion(&h5_major, &h5_minor, &h5_release);
  char buf[32];
  const std::time_t t = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  // built as pairs of std::string: assigning char* into the map trips a GCC 12 -Wrestrict false positive
  return Provenance{{"kdtrain_version", std::string(KDTRAIN_VERSION)},
                    {"compiler", fmt::format("gcc {}", __VERSION__)},
                    {"blas", std::string(openblas_get_config())},
                    {"blas_core", std::string(openblas_get_corename())},
                    {"threads", std::to_string(threads)},
                    {"world_size", std::string("1")},
                    {"created_utc", std::string(buf)},
                    {"hdf5_version", fmt::format("{}.{}.{}", h5_major, h5_minor, h5_release)},
                    {"fmt_version", std::to_string(FMT_VERSION)},
                    {"json_version", fmt::format("{}.{}.{}", NLOHMANN_JSON_VERSION_MAJOR, NLOHMANN_JSON_VERSION_MINOR,
                                                 NLOHMANN_JSON_VERSION_PATCH)}};
}

std::vector<std::string> check_provenance(const Provenance& saved, const Provenance& now,
                                          const std::string& path) {
  auto get = [](const Provenance& p, const std::string& k) {
    auto it = p.find(k);
    return it == p.end() ? std::string() : it->second;
  };
  for (const char* key : {"tokenizer_hash", "train_data_hash", "val_data_hash"}) {
    const std::string a = get(saved, key), b = get(now, key);
    KD_CHECK_INPUT(a.empty() || b.empty() || a == b,
                   "{}: provenance field '{}' is {} in the checkpoint but {} now: resuming would train on "
                   "different {}",
                   path, key, a, b, std::string(key).find("data") != std::string::npos ? "data" : "inputs");
  }
  std::vector<std::string> warnings;
  // the global batch and the data cursor do not depend on the world size: another number
  // of ranks continues the same run, summing in another order
  for (const char* key : {"threads", "world_size", "blas", "blas_core", "kdtrain_version"}) {
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
