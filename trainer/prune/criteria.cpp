#include "trainer/prune/criteria.h"

#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include <fmt/format.h>

#include "base/errors.h"

namespace kd::prune {

namespace {

// Prunes the `count` smallest (score, index) of the still-kept candidates.
struct Candidate {
  double score;
  std::size_t index;
  bool operator<(const Candidate& o) const { return score < o.score || (score == o.score && index < o.index); }
};
template <class F>
void prune_smallest(std::vector<Candidate>& c, std::size_t count, F&& prune_one) {
  count = std::min(count, c.size());
  if (count == 0) return;
  std::nth_element(c.begin(), c.begin() + std::ptrdiff_t(count - 1), c.end());
  for (std::size_t i = 0; i < count; ++i) prune_one(c[i].index);
}

std::size_t units_to_prune(double sparsity, std::size_t units) {
  return std::size_t(std::floor(sparsity * double(units) + 1e-9));
}

void magnitude(const std::vector<const TensorInfo*>& tensors, double sparsity, const float* w, Mask& m) {
  std::size_t total = 0, already = 0;
  std::vector<Candidate> c;
  for (const TensorInfo* t : tensors) {
    total += t->numel;
    for (std::size_t i = t->offset; i < t->offset + t->numel; ++i) {
      if (m.kept(i)) {
        c.push_back({std::fabs(double(w[i])), i});
      } else {
        ++already;
      }
    }
  }
  const std::size_t target = std::size_t(std::llround(sparsity * double(total)));
  if (target > already) prune_smallest(c, target - already, [&](std::size_t i) { m.prune(i); });
}

bool glob_match(const std::string& pattern, const std::string& name) {
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

// What a structured criterion removes, and from which tensors (by name); null for the
// criteria that take any prunable tensor.
struct StructuredUnits {
  const char* criterion;
  const char* units;
  const char* module;  // tensor names hold ".module."
};
const StructuredUnits* structured_units(Criterion c) {
  static const StructuredUnits heads{"heads", "KV groups", "self_attn"}, neurons{"neurons", "FFN neurons", "mlp"};
  return c == Criterion::heads ? &heads : c == Criterion::neurons ? &neurons : nullptr;
}

// Which blocks a structured criterion acts on: those holding a selected tensor.
std::vector<bool> selected_layers(const PruneTarget& t, const LlamaLayout& lay, const ParamTable& table) {
  std::set<std::size_t> offsets;
  for (const TensorInfo* ti : selected_tensors(t, table)) offsets.insert(ti->offset);
  const ModelSpec& s = lay.spec();
  const std::size_t d = s.d_model, qd = s.q_dim(), kvd = s.kv_dim(), f = s.d_ff;
  std::vector<bool> out;
  for (const auto& L : lay.layers()) {
    const std::size_t starts[] = {L.wqkv, L.wqkv + qd * d, L.wqkv + (qd + kvd) * d, L.wo, L.wgu, L.wgu + f * d, L.wdown};
    bool any = false;
    for (std::size_t o : starts) any |= offsets.count(o) > 0;
    out.push_back(any);
  }
  return out;
}

}  // namespace

std::vector<const TensorInfo*> selected_tensors(const PruneTarget& t, const ParamTable& table) {
  std::vector<const TensorInfo*> out;
  for (const auto& ti : table.tensors()) {
    if (!ti.has(kPrunable)) continue;
    bool hit = t.targets.empty();
    for (const auto& g : t.targets) hit |= glob_match(g, ti.name);
    if (hit) out.push_back(&ti);
  }
  return out;
}

void check_target(const PruneTarget& t, const ModelSpec& spec, const std::string& where) {
  KD_CHECK_INPUT(t.sparsity >= 0.0 && t.sparsity < 1.0, "{}.sparsity is {}: it must lie in [0, 1)", where, t.sparsity);
  if (!t.targets.empty()) {
    ParamTable table;
    const LlamaLayout lay(spec, table);
    const StructuredUnits* structure = structured_units(t.criterion);
    for (const auto& g : t.targets) {
      bool any = false;
      for (const auto& ti : table.tensors()) {
        if (!glob_match(g, ti.name)) continue;
        any = true;
        KD_CHECK_INPUT(ti.has(kPrunable), "{}.targets: '{}' matches {}, which cannot be pruned (only the linear "
                       "layers of the blocks can: q/k/v/o_proj, gate/up/down_proj)", where, g, ti.name);
        KD_CHECK_INPUT(!structure || ti.name.find(fmt::format(".{}.", structure->module)) != std::string::npos,
                       "{}.targets: '{}' matches {}, which the structured criterion {} cannot prune (it removes {} "
                       "of the {} tensors)", where, g, ti.name, structure->criterion, structure->units,
                       structure->module);
      }
      KD_CHECK_INPUT(any, "{}.targets: '{}' matches no tensor of the model (names look like "
                     "model.layers.0.mlp.up_proj.weight)", where, g);
    }
  }
  if (t.criterion == Criterion::n_m) {
    KD_CHECK_INPUT(t.m >= 2 && t.n >= 1 && t.n < t.m, "{}: N:M needs 1 <= n < m and m >= 2 (got {}:{})", where, t.n, t.m);
    const std::pair<const char*, int> dims[] = {{"q/k/v_proj and gate/up_proj (d_model)", spec.d_model},
                                                {"o_proj (n_heads * head_dim)", spec.q_dim()},
                                                {"down_proj (d_ff)", spec.d_ff}};
    for (const auto& [what, cols] : dims) {
      KD_CHECK_INPUT(cols % t.m == 0, "{}.m = {} does not divide the input dimension {} of {}", where, t.m, cols, what);
    }
  }
}

Mask prune(const PruneTarget& t, const LlamaLayout& lay, const ParamTable& table, const float* w, const Mask& current,
           const std::string& where) {
  const ModelSpec& s = lay.spec();
  check_target(t, s, where);
  KD_ASSERT(current.size() == table.total(), "mask of {} elements for a table of {}", current.size(), table.total());
  Mask m = current;
  const std::vector<const TensorInfo*> prunable = selected_tensors(t, table);
  const std::vector<bool> in_layer = selected_layers(t, lay, table);
  switch (t.criterion) {
    case Criterion::magnitude_global:
      magnitude(prunable, t.sparsity, w, m);
      break;
    case Criterion::hold:
      for (const TensorInfo* ti : prunable) {
        for (std::size_t i = ti->offset; i < ti->offset + ti->numel; ++i) {
          if (w[i] == 0.0f) m.prune(i);
        }
      }
      break;
    case Criterion::magnitude_layer:
      for (const TensorInfo* ti : prunable) magnitude({ti}, t.sparsity, w, m);
      break;
    case Criterion::n_m:
      for (const TensorInfo* ti : prunable) {
        for (std::size_t g = ti->offset; g < ti->offset + ti->numel; g += std::size_t(t.m)) {
          std::vector<Candidate> c;
          for (std::size_t i = g; i < g + std::size_t(t.m); ++i) {
            if (m.kept(i)) c.push_back({std::fabs(double(w[i])), i});
          }
          if (c.size() > std::size_t(t.n)) prune_smallest(c, c.size() - std::size_t(t.n), [&](std::size_t i) { m.prune(i); });
        }
      }
      break;
    case Criterion::heads: {
      const std::size_t d = s.d_model, hd = s.head_dim(), qd = s.q_dim(), kvd = s.kv_dim();
      const int per_group = s.n_heads / s.n_kv_heads;
      for (std::size_t l = 0; l < lay.layers().size(); ++l) {
        if (!in_layer[l]) continue;
        const auto& L = lay.layers()[l];
        // element lists of each KV group: q rows, k rows, v rows, o columns
        auto for_group = [&](int g, auto&& f) {
          for (int h = g * per_group; h < (g + 1) * per_group; ++h) {
            for (std::size_t r = 0; r < hd; ++r) {
              const std::size_t row = std::size_t(h) * hd + r;
              for (std::size_t c = 0; c < d; ++c) f(L.wqkv + row * d + c);       // q row
              for (std::size_t o = 0; o < d; ++o) f(L.wo + o * qd + row);         // o column
            }
          }
          for (std::size_t r = 0; r < hd; ++r) {
            const std::size_t krow = qd + std::size_t(g) * hd + r, vrow = qd + kvd + std::size_t(g) * hd + r;
            for (std::size_t c = 0; c < d; ++c) {
              f(L.wqkv + krow * d + c);
              f(L.wqkv + vrow * d + c);
            }
          }
        };
        std::vector<Candidate> c;
        std::size_t already = 0;
        for (int g = 0; g < s.n_kv_heads; ++g) {
          double score = 0;
          bool any_kept = false;
          for_group(g, [&](std::size_t i) {
            score += double(w[i]) * double(w[i]);
            any_kept |= m.kept(i);
          });
          if (any_kept) {
            c.push_back({score, std::size_t(g)});
          } else {
            ++already;
          }
        }
        const std::size_t target = units_to_prune(t.sparsity, std::size_t(s.n_kv_heads));
        if (target > already) {
          prune_smallest(c, target - already, [&](std::size_t g) { for_group(int(g), [&](std::size_t i) { m.prune(i); }); });
        }
      }
      break;
    }
    case Criterion::neurons: {
      const std::size_t d = s.d_model, f = s.d_ff;
      for (std::size_t l = 0; l < lay.layers().size(); ++l) {
        if (!in_layer[l]) continue;
        const auto& L = lay.layers()[l];
        auto for_neuron = [&](std::size_t j, auto&& fn) {
          for (std::size_t c = 0; c < d; ++c) {
            fn(L.wgu + j * d + c);        // gate row
            fn(L.wgu + (f + j) * d + c);  // up row
            fn(L.wdown + c * f + j);      // down column
          }
        };
        std::vector<Candidate> c;
        std::size_t already = 0;
        for (std::size_t j = 0; j < f; ++j) {
          double score = 0;
          bool any_kept = false;
          for_neuron(j, [&](std::size_t i) {
            score += double(w[i]) * double(w[i]);
            any_kept |= m.kept(i);
          });
          if (any_kept) {
            c.push_back({score, j});
          } else {
            ++already;
          }
        }
        const std::size_t target = units_to_prune(t.sparsity, f);
        if (target > already) {
          prune_smallest(c, target - already, [&](std::size_t j) { for_neuron(j, [&](std::size_t i) { m.prune(i); }); });
        }
      }
      break;
    }
    case Criterion::layers: {
      const std::size_t n_layers = lay.layers().size();
      KD_ASSERT(t.block_importance.size() == n_layers, "{} block importances for {} blocks",
                t.block_importance.size(), n_layers);
      std::vector<Candidate> c;
      std::size_t already = 0;
      for (std::size_t l = 0; l < n_layers; ++l) {
        if (!in_layer[l]) continue;
        bool any_kept = false;
        for_block_linears(lay, l, [&](std::size_t i) { any_kept |= m.kept(i); });
        if (any_kept) {
          c.push_back({t.block_importance[l], l});
        } else {
          ++already;
        }
      }
      const std::size_t target = units_to_prune(t.sparsity, n_layers);
      if (target > already) {
        prune_smallest(c, target - already, [&](std::size_t l) { for_block_linears(lay, l, [&](std::size_t i) { m.prune(i); }); });
      }
      break;
    }
  }
  return m;
}

}  // namespace kd::prune
