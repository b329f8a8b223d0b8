#include "trainer/oneshot/oneshot_prune.h"

#include <omp.h>

#include <fmt/format.h>

#include "base/errors.h"
#include "trainer/oneshot/block_sequential.h"
#include "trainer/oneshot/wanda.h"

namespace kd::oneshot {

PruneMethod parse_prune_method(const std::string& text, const std::string& key) {
  if (text == "magnitude") return PruneMethod::magnitude;
  if (text == "wanda") return PruneMethod::wanda;
  if (text == "sparsegpt") return PruneMethod::sparsegpt;
  throw InputError(fmt::format("{}: '{}' is not a method: magnitude | wanda | sparsegpt", key, text));
}

const char* method_name(PruneMethod m) {
  switch (m) {
    case PruneMethod::magnitude: return "magnitude";
    case PruneMethod::wanda: return "wanda";
    case PruneMethod::sparsegpt: return "sparsegpt";
  }
  return "?";
}

void check_prune_for_model(const OneshotPruneOptions& o, const ModelSpec& spec, const std::string& key) {
  for (const Site& s : block_sites(spec, 0)) {
    const int cols = s.input == LinearInput::o ? spec.q_dim() : s.input == LinearInput::down ? spec.d_ff : spec.d_model;
    for (const std::string& m : s.modules) check_sparsity_for(o.sparsity, cols, m, key);
  }
}

namespace {

class PruneCompressor final : public SiteCompressor {
 public:
  PruneCompressor(const OneshotPruneOptions& o, const ParamTable& table, PruneReport& rep)
      : o_(o), table_(table), rep_(rep) {}

  void compress(const Site& site, const InputStats& stats, float* params) override {
    std::vector<double> h;
    if (o_.method == PruneMethod::sparsegpt) h = stats.hessian();
    for (const std::string& m : site.modules) {
      const std::string name = m + ".weight";
      const auto& t = table_.at(name);
      float* w = params + t.offset;
      const int rows = int(t.shape[0]), cols = int(t.shape[1]);
      std::vector<std::uint8_t> mask;
      if (o_.method == PruneMethod::sparsegpt) {
        CompressedWeight c = sparsegpt(w, rows, cols, h, o_.sparsity, kern::QuantFormat{}, o_.obs, m, rep_.notes);
        std::copy(c.w.begin(), c.w.end(), w);
        mask = std::move(c.mask);
      } else {
        mask = o_.method == PruneMethod::wanda ? wanda_mask(w, rows, cols, stats.squared_norms(), o_.sparsity)
                                               : magnitude_mask(w, rows, cols, o_.sparsity);
        for (std::size_t i = 0; i < mask.size(); ++i) {
          if (!mask[i]) w[i] = 0.0f;
        }
      }
      rep_.masks[name] = std::move(mask);
    }
  }

 private:
  const OneshotPruneOptions& o_;
  const ParamTable& table_;
  PruneReport& rep_;
};

}  // namespace

PruneReport prune_oneshot(const OneshotPruneOptions& o, const LlamaLayout& lay, const ParamTable& table, float* params,
                          const std::vector<std::int32_t>& tokens, int samples, int seq_len, int threads,
                          const std::function<void(const std::string&)>& progress) {
  PruneReport rep;
  const double t0 = omp_get_wtime();
  PruneCompressor c(o, table, rep);
  if (o.method == PruneMethod::magnitude) {  // no data: every site at once
    const InputStats none(1);
    for (int l = 0; l < lay.spec().n_layers; ++l) {
      for (const Site& s : block_sites(lay.spec(), l)) c.compress(s, none, params);
    }
  } else {
    compress_block_sequential(lay, params, tokens, samples, seq_len, threads, c, progress);
  }
  rep.seconds = omp_get_wtime() - t0;
  return rep;
}

}  // namespace kd::oneshot
