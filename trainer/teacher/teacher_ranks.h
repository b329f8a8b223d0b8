// A teacher on its own ranks (parallel.teacher_ranks = N): of a world of W ranks, ranks
// 0 … S − 1 (S = W − N) are students (the data-parallel group, rank 0 the leader) and
// S … W − 1 run only the teacher. Teacher rank S + j serves the students s with
// s mod N = j: it reads each one's slice of every global micro-batch from its own replica
// of the data stream (same sampler, same seed), runs the teacher on it and sends, per
// micro-batch, the top-k logits and log-sum-exp at distill.temperature (floats: k values
// per position, then one lse per position; int32: k indices per position, then the
// FNV-1a of the tokens as two words, which the student checks). Student ranks never load
// the teacher's weights.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "trainer/dist/comm.h"
#include "trainer/distill/target_source.h"
#include "trainer/setup/run_inputs.h"

namespace kd {

struct TeacherRanks {
  int world = 1, teachers = 0;
  int students() const { return world - teachers; }
  bool is_teacher(int world_rank) const { return teachers > 0 && world_rank >= students(); }
  int teacher_of(int student) const { return students() + student % teachers; }  // a world rank
  std::vector<int> students_of(int teacher_world_rank) const;
};
// InputError when N leaves no student rank.
TeacherRanks teacher_ranks(const Config& cfg, int world);

// The student side: targets received from its teacher rank over `world`.
class RemoteTeacherTargets final : public TargetSource {
 public:
  // k = 0: the teacher rank sends full logits (bfloat16) instead of the top k.
  RemoteTeacherTargets(dist::Comm& world, int teacher_world_rank, int k, int kd_vocab);
  void fetch(std::int64_t first, int batch, int seq, const std::int32_t* tokens, TopKTargets& out) override;
  std::string describe() const override;

 private:
  dist::Comm& world_;
  int from_, k_, kd_vocab_;
  std::vector<float> floats_;
  std::vector<std::int32_t> ints_;
};

// The top-k of the teacher's logits the ranks send: distill.top_k capped at the vocabulary;
// 0 when they send full logits (parallel.teacher_sends: logits).
int teacher_rank_k(const Config& cfg, int kd_vocab);

// The teacher side: serves every step from `start_step` to train.steps, then returns.
void serve_as_teacher(RunInputs& in, dist::Comm& world, const TeacherRanks& layout, std::int64_t start_step);

}  // namespace kd
