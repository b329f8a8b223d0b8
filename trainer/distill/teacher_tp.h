// A tensor-parallel teacher (parallel.tensor_parallel = TP; Megatron-style, frozen): rank r
// of a TP group holds KV groups [r·G/TP, (r+1)·G/TP) with their query heads (the rows of
// q/k/v: column-parallel) and the matching columns of o_proj (row-parallel), FFN neurons
// [r·F/TP, (r+1)·F/TP) (rows of gate/up, columns of down); norms, the embedding and the head
// are replicated. Each block's output projection is a partial sum all-reduced over the
// group, so hidden states are the same on every rank. The head is vocab-parallel: rank r
// computes the logits of its slice of the vocabulary. For forward KL over equal
// vocabularies the student's head and the loss run vocab-parallel too
// (vocab_parallel_loss.cpp); otherwise the slices are all-gathered per chunk of rows for the
// loss (the student is replicated inside the group).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "trainer/checkpoint/checkpoint.h"
#include "trainer/dist/comm.h"
#include "trainer/distill/bf16_teacher.h"
#include "trainer/model/llama.h"

namespace kd {

// InputError naming `where` unless TP divides the KV groups and d_ff.
void check_tensor_parallel(const ModelSpec& teacher, int tp, const std::string& where);

// The shape of one rank's shard.
ModelSpec shard_spec(const ModelSpec& teacher, int tp);

struct TeacherShard {
  ModelSpec spec;  // n_heads, n_kv_heads, d_ff divided by TP; head_dim kept
  ParamTable table;
  std::unique_ptr<LlamaLayout> layout;
  std::vector<float> params;
};
// Rank `rank`'s shard of a full teacher's weights.
TeacherShard shard_teacher(const LlamaLayout& full, const float* weights, int tp, int rank);
// The same shard read straight from a (float) checkpoint: only its rows and columns of
// each tensor are read, so a rank never holds the whole teacher.
TeacherShard read_teacher_shard(const ckpt::CheckpointReader& r, const ModelSpec& teacher, int tp, int rank);

class TeacherTp {
 public:
  TeacherTp(dist::Comm& group, const LlamaLayout& shard, int batch, int seq);
  // The frozen forward: hidden and final normed states replicated on every rank.
  void forward(const float* params, const std::int32_t* tokens, FrozenActivations<float>& a);
  // Teacher logits (rows, V) for `rows` final normed states: the own vocabulary slice, then
  // all-gathered. Collective.
  void logits(float* out, const float* hidden, const float* params, int rows);
  // Only the own slice (rows, vocab_count()): the vocab-parallel loss needs no more.
  void slice_logits(float* out, const float* hidden, const float* params, int rows);
  std::size_t vocab_begin() const { return vocab_begin_; }
  std::size_t vocab_count() const { return vocab_counts_[std::size_t(group_.rank())]; }
  const std::vector<std::size_t>& vocab_counts() const { return vocab_counts_; }
  dist::Comm& group() { return group_; }
  // The shard's linear layers in bfloat16 (teacher.bf16); null: float GEMMs.
  void set_bf16(const Bf16Teacher* w) { bf16_ = w; }

 private:
  dist::Comm& group_;
  const LlamaLayout& shard_;
  std::vector<std::size_t> vocab_counts_;  // per rank
  std::size_t vocab_begin_ = 0;
  std::vector<float> partial_, slice_, gathered_;
  const Bf16Teacher* bf16_ = nullptr;
};

}  // namespace kd
