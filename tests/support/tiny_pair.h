// The tiny teacher/student pair of tests/fixtures/kd_tiny.kdt, loaded into kdtrain's
// flat buffers (templated on the scalar type so the double path can be checked too).
#pragma once

#include <string>
#include <vector>

#include "tests/support/kdt_reader.h"
#include "trainer/distill/distill_step.h"
#include "trainer/model/llama.h"

namespace kdtest {

inline kd::ModelSpec spec_from(const std::vector<int>& c) {
  kd::ModelSpec s;
  s.vocab = c[0];
  s.d_model = c[1];
  s.n_layers = c[2];
  s.n_heads = c[3];
  s.n_kv_heads = c[4];
  s.d_ff = c[5];
  s.tie_embeddings = c[6] != 0;
  return s;
}

inline kd::DistillSection case_spec(const Fixture& fx, const std::string& name) {
  const auto& c = fx.at("case." + name + ".config").values;
  kd::DistillSection d;
  d.alpha = c[0];
  d.temperature = c[1];
  d.divergence = static_cast<kd::kern::Divergence>(int(c[2]));
  d.jsd_beta = c[3];
  d.feature.beta = c[4];
  d.feature.kind = static_cast<kd::kern::FeatureLoss>(int(c[5]));
  if (d.feature.beta > 0) {
    const auto p = fx.ints("feature.pairs");
    for (std::size_t i = 0; i + 1 < p.size(); i += 2) d.feature.layers.push_back({p[i], p[i + 1]});
  }
  d.logit_chunk_rows = 5;  // several chunks, the last one partial
  return d;
}

template <class T>
struct TinyPair {
  kd::ModelSpec sspec, tspec;
  kd::ParamTable stable, ttable;
  std::unique_ptr<kd::LlamaLayout> student, teacher;
  std::vector<std::size_t> proj;
  std::vector<T> sparams, tparams;
  std::vector<std::int32_t> tokens, labels;
  int batch = 0, seq = 0;

  TinyPair(const Fixture& fx, const kd::DistillSection& spec) {
    sspec = spec_from(fx.ints("student.config"));
    tspec = spec_from(fx.ints("teacher.config"));
    student = std::make_unique<kd::LlamaLayout>(sspec, stable);
    teacher = std::make_unique<kd::LlamaLayout>(tspec, ttable);
    proj = kd::declare_feature_projections(stable, spec, sspec, &tspec);
    sparams.assign(stable.total(), T(0));
    tparams.assign(ttable.total(), T(0));
    for (const auto& t : stable.tensors()) {
      const std::string key = t.has(kd::kAuxiliary) ? t.name : "student." + t.name;
      load(fx.at(key), sparams.data() + t.offset, t.numel);
    }
    for (const auto& t : ttable.tensors()) {
      load(fx.at("teacher." + t.name), tparams.data() + t.offset, t.numel);
    }
    const auto bc = fx.ints("batch.config");
    batch = bc[0];
    seq = bc[1];
    for (int x : fx.ints("tokens")) tokens.push_back(x);
    for (int x : fx.ints("labels")) labels.push_back(x);
  }

  static void load(const Record& r, T* dst, std::size_t n) {
    if (r.numel() != n) throw std::runtime_error("fixture tensor size mismatch");
    for (std::size_t i = 0; i < n; ++i) dst[i] = T(r.values[i]);
  }
};

}  // namespace kdtest
