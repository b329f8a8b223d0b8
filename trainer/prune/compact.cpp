#include "trainer/prune/compact.h"

#include <algorithm>

#include "trainer/prune/criteria.h"
#include "base/errors.h"

namespace kd::prune {

namespace {

// A KV group is removed when all of its k rows are pruned; a neuron when its gate row is.
bool row_pruned(const Mask& m, std::size_t begin, std::size_t len) {
  for (std::size_t i = begin; i < begin + len; ++i) {
    if (m.kept(i)) return false;
  }
  return true;
}

}  // namespace

Structure structure_of(const LlamaLayout& lay, const Mask& mask) {
  const ModelSpec& s = lay.spec();
  const std::size_t d = s.d_model, hd = s.head_dim(), qd = s.q_dim(), f = s.d_ff;
  Structure st;
  st.kept_groups.resize(lay.layers().size());
  st.kept_neurons.resize(lay.layers().size());
  for (std::size_t l = 0; l < lay.layers().size(); ++l) {
    bool any_kept = false;
    for_block_linears(lay, l, [&](std::size_t i) { any_kept |= mask.kept(i); });
    if (!any_kept) continue;  // depth-pruned: the block is the identity
    st.kept_layers.push_back(l);
    const auto& L = lay.layers()[l];
    for (int g = 0; g < s.n_kv_heads; ++g) {
      if (!row_pruned(mask, L.wqkv + (qd + std::size_t(g) * hd) * d, hd * d)) st.kept_groups[l].push_back(g);
    }
    for (std::size_t j = 0; j < f; ++j) {
      if (!row_pruned(mask, L.wgu + j * d, d)) st.kept_neurons[l].push_back(int(j));
    }
  }
  for (std::size_t l : st.kept_layers) {
    const std::size_t first = st.kept_layers.front();
    if (st.kept_groups[l].size() != st.kept_groups[first].size() ||
        st.kept_neurons[l].size() != st.kept_neurons[first].size()) {
      st.uniform = false;
    }
  }
  return st;
}

Compacted compact(const LlamaLayout& lay, const float* w, const Mask& mask) {
  const Structure st = structure_of(lay, mask);
  const auto& kept_layers = st.kept_layers;
  const auto& kept_groups = st.kept_groups;
  const auto& kept_neurons = st.kept_neurons;
  KD_CHECK_INPUT(!kept_layers.empty(), "export --compact: every transformer block is pruned");
  for (std::size_t l : kept_layers) {
    const std::size_t first = kept_layers.front();
    KD_CHECK_INPUT(kept_groups[l].size() == kept_groups[first].size() &&
                       kept_neurons[l].size() == kept_neurons[first].size(),
                   "export --compact: layer {} keeps {} KV groups and {} neurons, layer {} keeps {} and {}: a "
                   "non-uniform model is not a standard Llama config (prune heads/neurons uniformly)",
                   l, kept_groups[l].size(), kept_neurons[l].size(), first, kept_groups[first].size(),
                   kept_neurons[first].size());
    KD_CHECK_INPUT(!kept_groups[l].empty() && !kept_neurons[l].empty(),
                   "export --compact: layer {} has no KV group or no FFN neuron left (but is not wholly pruned)", l);
  }
  return compact_structure(lay, w, st);
}

Compacted compact_structure(const LlamaLayout& lay, const float* w, const Structure& st) {
  const ModelSpec& s = lay.spec();
  const std::size_t d = s.d_model, hd = s.head_dim(), qd = s.q_dim(), kvd = s.kv_dim(), f = s.d_ff;
  const int per_group = s.n_heads / s.n_kv_heads;
  const auto& kept_layers = st.kept_layers;
  const auto& kept_groups = st.kept_groups;
  const auto& kept_neurons = st.kept_neurons;
  Compacted c;
  c.spec = s;
  const std::size_t first = kept_layers.front();
  c.spec.n_layers = int(kept_layers.size());
  c.spec.n_kv_heads = int(kept_groups[first].size());
  c.spec.n_heads = c.spec.n_kv_heads * per_group;
  c.spec.d_ff = int(kept_neurons[first].size());
  c.spec.head_dim_override = int(hd);
  c.removed_layers = s.n_layers - c.spec.n_layers;
  c.removed_kv_groups = s.n_kv_heads - c.spec.n_kv_heads;
  c.removed_neurons = int(f) - c.spec.d_ff;
  c.layout = std::make_unique<LlamaLayout>(c.spec, c.table);
  c.params.assign(c.table.total(), 0.0f);
  float* out = c.params.data();
  const std::size_t qd2 = c.spec.q_dim(), kvd2 = c.spec.kv_dim(), f2 = c.spec.d_ff;
  auto copy_row = [&](std::size_t dst, std::size_t src, std::size_t n) { std::copy_n(w + src, n, out + dst); };
  copy_row(c.layout->embed(), lay.embed(), std::size_t(s.vocab) * d);
  copy_row(c.layout->final_norm(), lay.final_norm(), d);
  if (!s.tie_embeddings) copy_row(c.layout->head(), lay.head(), std::size_t(s.vocab) * d);
  for (std::size_t l2 = 0; l2 < kept_layers.size(); ++l2) {
    const std::size_t l = kept_layers[l2];
    const auto& A = lay.layers()[l];
    const auto& B = c.layout->layers()[l2];
    copy_row(B.ln1, A.ln1, d);
    copy_row(B.ln2, A.ln2, d);
    // q heads of the kept groups, in order; their o_proj columns
    std::size_t qrow = 0;
    for (int g : kept_groups[l]) {
      for (int h = g * per_group; h < (g + 1) * per_group; ++h) {
        for (std::size_t r = 0; r < hd; ++r, ++qrow) {
          const std::size_t src_row = std::size_t(h) * hd + r;
          copy_row(B.wqkv + qrow * d, A.wqkv + src_row * d, d);
          for (std::size_t o = 0; o < d; ++o) out[B.wo + o * qd2 + qrow] = w[A.wo + o * qd + src_row];
        }
      }
    }
    std::size_t krow = 0;
    for (int g : kept_groups[l]) {
      for (std::size_t r = 0; r < hd; ++r, ++krow) {
        copy_row(B.wqkv + (qd2 + krow) * d, A.wqkv + (qd + std::size_t(g) * hd + r) * d, d);
        copy_row(B.wqkv + (qd2 + kvd2 + krow) * d, A.wqkv + (qd + kvd + std::size_t(g) * hd + r) * d, d);
      }
    }
    for (std::size_t j2 = 0; j2 < f2; ++j2) {
      const std::size_t j = std::size_t(kept_neurons[l][j2]);
      copy_row(B.wgu + j2 * d, A.wgu + j * d, d);
      copy_row(B.wgu + (f2 + j2) * d, A.wgu + (f + j) * d, d);
      for (std::size_t o = 0; o < d; ++o) out[B.wdown + o * f2 + j2] = w[A.wdown + o * f + j];
    }
  }
  return c;
}

}  // namespace kd::prune
