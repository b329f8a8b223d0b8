// kdtrain train / distill: the training loop with a progress line, on synthetic data
// (corpora arrive with `kdtrain prepare`).
#include <omp.h>

#include <cstdio>

#include <fmt/format.h>

#include "data/synthetic.h"
#include "trainer/cli/commands.h"
#include "trainer/train/batch_sources.h"
#include "trainer/train/teacher_pretrain.h"
#include "trainer/train/trainer.h"
#include "trainer/util/errors.h"

namespace kd::cli {

int run_train(const TrainOptions& o) {
  const Config cfg = load_config(o.config, o.overrides);
  const int threads = set_threads(cfg.train.threads);
  const auto& tr = cfg.train;
  auto train_src = make_synthetic(cfg, Stream::train), eval_src = make_synthetic(cfg, Stream::validation);
  data::SyntheticTokens& train_data = *train_src;
  data::SyntheticTokens& eval_data = *eval_src;
  fmt::print("kdtrain: config {} | threads {} | {}\n", o.config, threads, blas_description());
  if (cfg.data.kind == DataKind::markov) {
    fmt::print("data: markov chain, vocab {}, support {}; entropy rate {:.4f} nats (the lowest CE)\n",
               cfg.model.vocab, cfg.data.markov_support, train_data.entropy_rate());
  }
  Trainer trainer(cfg);
  if (cfg.has_teacher && cfg.distill.teacher_pretrain_steps > 0) {
    auto teacher_data = make_synthetic(cfg, Stream::teacher_pretrain);
    const double ce = pretrain_teacher(cfg, cfg.distill.teacher_pretrain_steps, *teacher_data,
                                       trainer.teacher_params());
    fmt::print("teacher: pretrained {} steps on labels, last CE {:.4f}\n",
               cfg.distill.teacher_pretrain_steps, ce);
  }
  fmt::print("student: {} parameters ({} trained incl. auxiliary)\n",
             trainer.student_table().count(0, kAuxiliary), trainer.student_table().total());
  std::FILE* loss_log = nullptr;
  if (!o.loss_log.empty()) {
    loss_log = std::fopen(o.loss_log.c_str(), "w");
    KD_CHECK_INPUT(loss_log != nullptr, "--loss-log {}: cannot open for writing", o.loss_log);
    std::fprintf(loss_log, "step loss ce kd feat grad_norm lr skipped\n");
  }
  const double tokens_per_step = double(tr.batch_size) * tr.seq_len * tr.grad_accum;
  double window = 0;
  for (std::int64_t s = 0; s < tr.steps; ++s) {
    const StepReport r = trainer.step(train_data);
    window += r.seconds;
    if (loss_log != nullptr) {
      std::fprintf(loss_log, "%lld %.17g %.17g %.17g %.17g %.17g %.17g %d\n", static_cast<long long>(s + 1),
                   r.loss.loss, r.loss.ce, r.loss.kd, r.loss.feat, r.grad_norm, r.lr, r.skipped ? 1 : 0);
    }
    if (r.skipped) {
      fmt::print("step {:>6}: SKIPPED non-finite {} ({} skipped so far)\n", s + 1, r.nonfinite,
                 trainer.skipped_steps());
    }
    if ((s + 1) % tr.log_every == 0 || s + 1 == tr.steps) {
      const int n = (s + 1) % tr.log_every == 0 ? tr.log_every : int((s + 1) % tr.log_every);
      fmt::print("step {:>6}/{}: loss {:.4f} ce {:.4f} kd {:.4f} feat {:.4f} | grad {:.3f} lr {:.2e} "
                 "| {:.0f} tok/s\n",
                 s + 1, tr.steps, r.loss.loss, r.loss.ce, r.loss.kd, r.loss.feat, r.grad_norm, r.lr,
                 tokens_per_step * n / window);
      std::fflush(stdout);
      window = 0;
    }
  }
  if (loss_log != nullptr) std::fclose(loss_log);
  const double held_out = trainer.evaluate(eval_data, o.eval_batches);
  fmt::print("held-out CE {:.4f} over {} batches; skipped steps {}\n", held_out, o.eval_batches,
             trainer.skipped_steps());
  return 0;
}

}  // namespace kd::cli
