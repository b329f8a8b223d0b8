#include "trainer/setup/memory_estimate.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>

#include <fmt/format.h>

#include "data/dp_source.h"
#include "trainer/distill/distill_step.h"
#include "trainer/distill/on_policy.h"
#include "trainer/distill/teacher_tp.h"
#include "trainer/quant/qat.h"
#include "trainer/quant/quant_plan.h"
#include "base/errors.h"

namespace kd {

MemoryEstimate estimate_memory(const Config& cfg, int ranks) {
  const auto& tr = cfg.train;
  const int teachers = cfg.parallel.teacher_ranks, tp = cfg.parallel.tensor_parallel;
  KD_CHECK_INPUT(ranks >= 1 && teachers < ranks, "--ranks {}: parallel.teacher_ranks is {}", ranks, teachers);
  const int students = ranks - teachers;
  KD_CHECK_INPUT(students % tp == 0, "--ranks {}: parallel.tensor_parallel {} does not divide the {} student ranks",
                 ranks, tp, students);
  const int dp = students / tp;
  KD_CHECK_INPUT(tr.batch_size >= dp, "--ranks {}: train.batch_size {} is smaller than the {} data-parallel ranks",
                 ranks, tr.batch_size, dp);
  const int local_batch = data::DataParallelSource::split(tr.batch_size, dp).front();
  const bool topk = cfg.has_teacher && (!cfg.teacher.cache.empty() || teachers > 0);
  MemoryEstimate e;
  e.layout = fmt::format("{} rank(s): {} data-parallel{}{}", ranks, dp,
                         tp > 1 ? fmt::format(" x {} tensor-parallel", tp) : "",
                         teachers > 0 ? fmt::format(" + {} teacher rank(s)", teachers) : "");

  ParamTable stable, ttable;
  const LlamaLayout student(cfg.model, stable);
  const DistillSection& spec = cfg.distill;
  const auto proj = declare_feature_projections(stable, spec, cfg.model, cfg.has_teacher ? &cfg.teacher.spec : nullptr);
  std::unique_ptr<quant::QatState> qat;
  if (cfg.has_quant) qat = std::make_unique<quant::QatState>(quant::plan_quantization(cfg.quant, cfg.model), stable);
  std::unique_ptr<LlamaLayout> teacher;
  if (cfg.has_teacher && !topk) {
    if (tp > 1) check_tensor_parallel(cfg.teacher.spec, tp, "parallel.tensor_parallel");
    teacher = std::make_unique<LlamaLayout>(tp > 1 ? shard_spec(cfg.teacher.spec, tp) : cfg.teacher.spec, ttable);
  }
  const double n = double(stable.total()), padded = double(dist::zero_shard(stable.total(), dp)) * dp, f = 4.0;
  auto add = [&](std::string what, double bytes) {
    if (bytes > 0) e.lines.push_back({std::move(what), bytes});
  };
  add("student parameters (fp32, the whole buffer)", f * padded);
  add("gradients (fp32, the whole buffer)", f * padded);
  if (dp > 1) add("gradient shard after reduce-scatter", f * padded / dp);
  add(fmt::format("AdamW moments (2 x fp32, 1/{} shard)", dp), 2 * f * padded / dp);
  if (qat) add("QAT: fake-quantized weight copy", f * n);
  if (cfg.has_prune) {
    add("pruning mask (1 byte per parameter)", n);
    if (cfg.prune.schedule == PruneScheduleKind::imp) add("IMP rewind snapshot", f * n);
  }
  if (teacher) {
    add(tp > 1 ? fmt::format("teacher shard (fp32, 1/{} of the blocks; embedding and head whole)", tp)
               : "teacher (fp32)",
        f * double(ttable.total()));
  }
  const DistillStep<float> step(student, teacher.get(), spec, proj, local_batch, tr.seq_len, std::max(1, tr.threads),
                                qat.get(), topk, true);
  add(fmt::format("activations and logit chunks ({} sequences x {} tokens)", local_batch, tr.seq_len),
      double(step.arena_bytes()));
  if (cfg.has_teacher && spec.on_policy.enabled()) {
    add(fmt::format("on-policy: the student's KV cache and decoding activations ({} positions)", tr.seq_len),
        double(OnPolicyRollouts::bytes(cfg.model, spec.on_policy, local_batch, tr.seq_len, std::max(1, tr.threads))));
  }
  if (topk) {
    const std::size_t m = std::size_t(local_batch) * tr.seq_len;
    if (teachers > 0 && cfg.parallel.teacher_sends == TeacherSends::logits) {
      add("the teacher's full logits of a micro-batch (bf16)", 2.0 * double(m) * cfg.model.vocab);
    } else {
      add(fmt::format("top-{} teacher targets of a micro-batch", cfg.distill.top_k),
          double(m) * (8.0 * cfg.distill.top_k + 4.0));
    }
  }
  for (const auto& l : e.lines) e.total += l.bytes;
  if (teachers > 0) {
    ParamTable full;
    const LlamaLayout t(cfg.teacher.spec, full);
    FrozenActivations<float> a;
    a.arena.measure_only();
    a.build(cfg.teacher.spec, local_batch, tr.seq_len, std::max(1, tr.threads), {});
    e.teacher_rank_total = f * double(full.total()) + double(a.arena.bytes()) +
                           f * double(cfg.distill.logit_chunk_rows) * cfg.teacher.spec.vocab;
  }
  return e;
}

std::string format_memory(const MemoryEstimate& e) {
  auto mib = [](double b) { return fmt::format("{:>10.1f} MiB", b / 1048576.0); };
  std::string s = fmt::format("memory per rank (estimate), {}:\n", e.layout);
  for (const auto& l : e.lines) s += fmt::format("  {:<70} {}\n", l.what, mib(l.bytes));
  s += fmt::format("  {:<70} {}\n", "total, a student rank", mib(e.total));
  if (e.teacher_rank_total > 0) s += fmt::format("  {:<70} {}\n", "total, a teacher rank", mib(e.teacher_rank_total));
  return s;
}

MemoryLimit process_memory_limit() {
  MemoryLimit m{double(::sysconf(_SC_PHYS_PAGES)) * double(::sysconf(_SC_PAGESIZE)), "this machine's physical memory"};
  struct rlimit r {};
  if (::getrlimit(RLIMIT_AS, &r) == 0 && r.rlim_cur != RLIM_INFINITY && double(r.rlim_cur) < m.bytes) {
    m = {double(r.rlim_cur), "the address-space limit RLIMIT_AS (ulimit -v)"};
  }
  return m;
}

void check_fits_in_memory(double bytes, const std::string& what, const std::string& advice) {
  const MemoryLimit limit = process_memory_limit();
  KD_CHECK_INPUT(limit.bytes <= 0 || bytes <= limit.bytes, "{} need {:.1f} GiB, more than {} ({:.1f} GiB): {}", what,
                 bytes / double(1ull << 30), limit.source, limit.bytes / double(1ull << 30), advice);
}

void check_memory_fits(const Config& cfg, int ranks, const std::string& where) {
  MemoryEstimate e;
  try {
    e = estimate_memory(cfg, ranks);
  } catch (const InputError&) {
    return;  // ranks that do not fit the layout: named by the layout's own checks
  }
  const MemoryLimit limit = process_memory_limit();
  const double need = std::max(e.total, e.teacher_rank_total);
  if (limit.bytes <= 0 || need <= limit.bytes) return;
  auto lines = e.lines;
  std::sort(lines.begin(), lines.end(), [](const auto& a, const auto& b) { return a.bytes > b.bytes; });
  std::string largest;
  for (std::size_t i = 0; i < std::min<std::size_t>(3, lines.size()); ++i) {
    largest += fmt::format("{}{} {:.1f} GiB", i ? ", " : "", lines[i].what, lines[i].bytes / double(1ull << 30));
  }
  const ModelSpec& m = cfg.model;
  std::string sizes = fmt::format("model.d_model = {}, model.vocab = {}, model.n_layers = {}, model.d_ff = {}",
                                  m.d_model, m.vocab, m.n_layers, m.d_ff);
  if (cfg.has_teacher && cfg.teacher.spec.d_model > 0 && cfg.teacher.cache.empty()) {
    sizes += fmt::format("; the teacher's d_model = {}, vocab = {}, n_layers = {}, d_ff = {}", cfg.teacher.spec.d_model,
                         cfg.teacher.spec.vocab, cfg.teacher.spec.n_layers, cfg.teacher.spec.d_ff);
  }
  throw InputError(fmt::format("{}: estimated memory per rank {:.1f} GiB is more than {} ({:.1f} GiB): largest {}; "
                               "from {} (and train.batch_size {}, train.seq_len {}); `kdtrain validate --ranks N` "
                               "itemises it",
                               where, need / double(1ull << 30), limit.source, limit.bytes / double(1ull << 30),
                               largest, sizes, cfg.train.batch_size, cfg.train.seq_len));
}

}  // namespace kd
