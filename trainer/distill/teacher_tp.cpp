#include "trainer/distill/teacher_tp.h"

#include <algorithm>
#include <numeric>

#include "data/dp_source.h"
#include "kernels/kernels.h"
#include "trainer/prune/compact.h"
#include "base/errors.h"

namespace kd {

void check_tensor_parallel(const ModelSpec& t, int tp, const std::string& where) {
  KD_CHECK_INPUT(tp >= 1 && t.n_kv_heads % tp == 0 && t.d_ff % tp == 0,
                 "{}: parallel.tensor_parallel {} must divide the teacher's n_kv_heads ({}) and d_ff ({}): each rank "
                 "holds whole KV groups and an equal share of the FFN", where, tp, t.n_kv_heads, t.d_ff);
}

ModelSpec shard_spec(const ModelSpec& t, int tp) {
  ModelSpec s = t;
  s.head_dim_override = t.head_dim();
  s.n_kv_heads = t.n_kv_heads / tp;
  s.n_heads = t.n_heads / tp;
  s.d_ff = t.d_ff / tp;
  return s;
}

TeacherShard shard_teacher(const LlamaLayout& full, const float* w, int tp, int rank) {
  const ModelSpec& s = full.spec();
  check_tensor_parallel(s, tp, "the teacher");
  prune::Structure st;
  const int g = s.n_kv_heads / tp, f = s.d_ff / tp;
  st.kept_groups.resize(std::size_t(s.n_layers));
  st.kept_neurons.resize(std::size_t(s.n_layers));
  for (int l = 0; l < s.n_layers; ++l) {
    st.kept_layers.push_back(std::size_t(l));
    for (int k = rank * g; k < (rank + 1) * g; ++k) st.kept_groups[std::size_t(l)].push_back(k);
    for (int j = rank * f; j < (rank + 1) * f; ++j) st.kept_neurons[std::size_t(l)].push_back(j);
  }
  prune::Compacted c = prune::compact_structure(full, w, st);
  TeacherShard out;
  out.spec = c.spec;
  KD_ASSERT(out.spec.n_heads == shard_spec(s, tp).n_heads && out.spec.d_ff == shard_spec(s, tp).d_ff,
            "a tensor-parallel shard of an unexpected shape");
  out.table = std::move(c.table);
  out.params = std::move(c.params);
  out.layout = std::move(c.layout);  // offsets only: valid with the moved table
  return out;
}

TeacherShard read_teacher_shard(const ckpt::CheckpointReader& r, const ModelSpec& t, int tp, int rank) {
  check_tensor_parallel(t, tp, "the teacher");
  TeacherShard out;
  out.spec = shard_spec(t, tp);
  out.layout = std::make_unique<LlamaLayout>(out.spec, out.table);
  out.params.assign(out.table.total(), 0.0f);
  ParamTable full_table;
  const LlamaLayout full(t, full_table);
  r.expect_only("model", full_table.names(), "the teacher's model");
  const std::int64_t qd = out.spec.q_dim(), kvd = out.spec.kv_dim(), f = out.spec.d_ff;
  auto ends_with = [](const std::string& s, const char* suffix) {
    const std::string x(suffix);
    return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  for (const auto& ti : out.table.tensors()) {
    const auto& whole = full_table.at(ti.name);
    float* dst = out.params.data() + ti.offset;
    const std::int64_t rows = whole.shape.size() == 2 ? whole.shape[0] : 0, cols = whole.shape.size() == 2 ? whole.shape[1] : 0;
    // column-parallel: a block of rows; row-parallel: a block of columns; the rest whole
    if (ends_with(ti.name, "q_proj.weight")) {
      r.read_block("model", ti.name, whole.shape, rank * qd, qd, 0, cols, dst);
    } else if (ends_with(ti.name, "k_proj.weight") || ends_with(ti.name, "v_proj.weight")) {
      r.read_block("model", ti.name, whole.shape, rank * kvd, kvd, 0, cols, dst);
    } else if (ends_with(ti.name, "o_proj.weight")) {
      r.read_block("model", ti.name, whole.shape, 0, rows, rank * qd, qd, dst);
    } else if (ends_with(ti.name, "gate_proj.weight") || ends_with(ti.name, "up_proj.weight")) {
      r.read_block("model", ti.name, whole.shape, rank * f, f, 0, cols, dst);
    } else if (ends_with(ti.name, "down_proj.weight")) {
      r.read_block("model", ti.name, whole.shape, 0, rows, rank * f, f, dst);
    } else {
      r.read("model", ti.name, whole.shape, dst);
    }
  }
  return out;
}

TeacherTp::TeacherTp(dist::Comm& group, const LlamaLayout& shard, int batch, int seq)
    : group_(group), shard_(shard), partial_(std::size_t(batch) * seq * std::size_t(shard.spec().d_model)) {
  for (const int c : data::DataParallelSource::split(shard.spec().vocab, group.size())) vocab_counts_.push_back(std::size_t(c));
  vocab_begin_ = std::accumulate(vocab_counts_.begin(), vocab_counts_.begin() + group.rank(), std::size_t(0));
}

void TeacherTp::forward(const float* params, const std::int32_t* tokens, FrozenActivations<float>& a) {
  llama_forward_frozen_tp(shard_, params, tokens, a, partial_.data(),
                          [this](float* x, std::size_t n) { group_.all_reduce_sum(std::span<float>(x, n)); },
                          const_cast<Bf16Teacher*>(bf16_));
}

void TeacherTp::slice_logits(float* out, const float* hidden, const float* params, int rows) {
  const std::size_t d = std::size_t(shard_.spec().d_model);
  if (bf16_ != nullptr) {
    kern::linear_forward_bf16(out, hidden, bf16_->weight(-1, LinearInput::head) + vocab_begin_ * d, rows,
                              int(vocab_count()), int(d), false);
    return;
  }
  kern::linear_forward<float>(out, hidden, params + shard_.head() + vocab_begin_ * d, rows, int(vocab_count()), int(d),
                              false);
}

void TeacherTp::logits(float* out, const float* hidden, const float* params, int rows) {
  const std::size_t v = std::size_t(shard_.spec().vocab);
  const std::size_t mine = vocab_counts_[std::size_t(group_.rank())];
  slice_.resize(std::size_t(rows) * mine);
  slice_logits(slice_.data(), hidden, params, rows);
  std::vector<std::size_t> counts(vocab_counts_.size());
  for (std::size_t r = 0; r < counts.size(); ++r) counts[r] = std::size_t(rows) * vocab_counts_[r];
  gathered_.resize(std::size_t(rows) * v);
  group_.all_gather_v(slice_, gathered_, counts);
  // rank blocks (rows, V_r) one after another -> rows of V
  std::size_t block = 0, col = 0;
  for (std::size_t r = 0; r < vocab_counts_.size(); ++r) {
    const std::size_t vr = vocab_counts_[r];
    for (int i = 0; i < rows; ++i) {
      std::copy_n(gathered_.data() + block + std::size_t(i) * vr, vr, out + std::size_t(i) * v + col);
    }
    block += std::size_t(rows) * vr;
    col += vr;
  }
}

}  // namespace kd
