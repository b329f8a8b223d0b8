#include "trainer/train/trainer.h"

#include <cblas.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>

#include "trainer/optim/lr_schedule.h"
#include "trainer/train/batch_sources.h"
#include "trainer/util/errors.h"

namespace kd {

int set_threads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
  const int n = omp_get_max_threads();
  openblas_set_num_threads(n);
  return n;
}

std::string blas_description() {
  const int par = openblas_get_parallel();  // 0 sequential, 1 pthreads, 2 OpenMP
  const char* model = par == 2 ? "openmp" : par == 1 ? "pthread" : "sequential";
  return fmt::format("{} | core {} | threading {} | threads {}", openblas_get_config(),
                     openblas_get_corename(), model, openblas_get_num_threads());
}

Trainer::Trainer(const Config& cfg) : cfg_(cfg) {
  const auto& tr = cfg_.train;
  student_ = std::make_unique<LlamaLayout>(cfg_.model, stable_);
  if (cfg_.has_teacher) teacher_ = std::make_unique<LlamaLayout>(cfg_.teacher.spec, ttable_);
  const DistillSpec spec = cfg_.distill_spec();
  proj_ = declare_feature_projections(stable_, spec, cfg_.model,
                                      cfg_.has_teacher ? &cfg_.teacher.spec : nullptr);
  if (cfg_.has_quant) {
    qat_ = std::make_unique<quant::QatState>(quant::plan_quantization(cfg_.quant, cfg_.model), stable_);
  }
  sparams_.resize(stable_.total());
  grads_.resize(stable_.total());
  student_->init(sparams_.data(), std::uint64_t(tr.seed), tr.init_std);
  {
    // projections: N(0, 1/sqrt(d_teacher)) so the target starts at the teacher's scale
    std::mt19937_64 rng(std::uint64_t(tr.seed) ^ 0x9e3779b97f4a7c15ull);
    for (std::size_t k = 0; k < proj_.size(); ++k) {
      const auto& t = stable_.at("distill.feature_proj." + std::to_string(k) + ".weight");
      std::normal_distribution<float> nd(0.0f, 1.0f / std::sqrt(float(t.shape[1])));
      for (std::size_t i = 0; i < t.numel; ++i) sparams_[t.offset + i] = nd(rng);
    }
  }
  if (teacher_) {
    tparams_.resize(ttable_.total());
    teacher_->init(tparams_.data(), std::uint64_t(tr.seed) + 1, tr.init_std);
  }
  adamw_ = std::make_unique<AdamW<float>>(stable_, cfg_.optim, cfg_.has_quant ? cfg_.quant.scale_lr_ratio : 1.0);
  if (cfg_.has_prune) {
    pruner_ = std::make_unique<prune::Pruner>(cfg_.prune, *student_, stable_, std::uint64_t(tr.seed), tr.init_std);
    if (cfg_.prune.criterion == prune::Criterion::layers) {
      if (cfg_.data.kind != DataKind::shards) prune_calibration_ = make_synthetic(cfg_, Stream::prune_calibration);
      pruner_->set_block_scorer([this](const float* params) {
        KD_ASSERT(prune_calibration_, "depth pruning without calibration data");
        const prune::ScoringData data{prune_calibration_.get(), cfg_.prune.calibration_batches, cfg_.train.batch_size,
                                      cfg_.train.seq_len, omp_get_max_threads()};
        return prune::block_importance(cfg_.prune.depth_score, *student_, params, stable_.total(), data);
      });
    }
  }
  const int threads = omp_get_max_threads();
  dstep_ = std::make_unique<DistillStep<float>>(*student_, teacher_.get(), spec, proj_,
                                                tr.batch_size, tr.seq_len, threads, qat_.get());
  tokens_.resize(std::size_t(tr.batch_size) * tr.seq_len);
  labels_.resize(tokens_.size());
}

std::string Trainer::first_nonfinite_gradient() const {
  // one pass over the whole flat buffer; the table only names the tensor when one is found
  const auto i = kern::first_non_finite<float>(grads_.data(), grads_.size());
  if (i < 0) return {};
  for (const auto& t : stable_.tensors()) {
    if (std::size_t(i) < t.offset + t.numel) {
      return fmt::format("gradient of '{}' (element {})", t.name, std::size_t(i) - t.offset);
    }
  }
  return {};
}

StepReport Trainer::step(data::BatchSource& source) {
  const auto& tr = cfg_.train;
  const double t0 = omp_get_wtime();
  StepReport rep;
  rep.step = step_;
  grads_.zero();
  if (pruner_) rep.prune_event = pruner_->begin_step(step_, sparams_.data(), *adamw_);
  // QAT: the forward reads fake-quantized weights
  const float* params = qat_ ? qat_->begin_step(step_, sparams_.data(), grads_.data()) : sparams_.data();
  const double scale = 1.0 / tr.grad_accum;
  std::string bad;
  for (int micro = 0; micro < tr.grad_accum; ++micro) {
    source.next(tokens_.data(), labels_.data(), tr.batch_size, tr.seq_len);
    const StepLoss l = dstep_->run(params, grads_.data(), tparams_.data(),
                                   tokens_.data(), labels_.data(), scale, &rep.phases);
    rep.loss.loss += l.loss * scale;
    rep.loss.ce += l.ce * scale;
    rep.loss.kd += l.kd * scale;
    rep.loss.feat += l.feat * scale;
    rep.loss.tokens += l.tokens;
    if (bad.empty() && !std::isfinite(l.loss)) {
      bad = fmt::format("loss (micro-batch {}: ce={} kd={} feat={})", micro, l.ce, l.kd, l.feat);
    }
  }
  if (qat_) qat_->end_step(sparams_.data(), grads_.data());
  const double t1 = omp_get_wtime();
  const std::string bad_grad = first_nonfinite_gradient();
  if (!bad.empty() || !bad_grad.empty()) {
    const std::string what = bad.empty() ? bad_grad
                             : bad_grad.empty() ? bad
                                                : bad + "; first non-finite " + bad_grad;
    if (tr.nan_policy == NanPolicy::stop) {
      throw RuntimeFailure(fmt::format("step {}: non-finite {} (train.nan_policy: stop)", step_, what));
    }
    rep.skipped = true;
    rep.nonfinite = what;
    ++skipped_;
  } else {
    if (pruner_) pruner_->mask_gradients(grads_.data());
    rep.grad_norm = global_norm(grads_.data(), grads_.size());
    const auto [position, length] = pruner_ ? pruner_->lr_position(step_, tr.steps) : std::pair{step_, tr.steps};
    rep.lr = lr_at(cfg_.optim, length, position);
    adamw_->step(sparams_.data(), grads_.data(), rep.lr, clip_factor(rep.grad_norm, cfg_.optim.grad_clip));
    if (pruner_) pruner_->after_update(sparams_.data(), adamw_->m(), adamw_->v());
  }
  ++step_;
  const double t2 = omp_get_wtime();
  rep.optim_seconds = t2 - t1;
  rep.seconds = t2 - t0;
  return rep;
}

double Trainer::evaluate(data::BatchSource& source, int batches) {
  if (!evaluator_) {
    evaluator_ = std::make_unique<Evaluator>(*student_, nullptr, cfg_.train.batch_size, cfg_.train.seq_len,
                                             omp_get_max_threads(), qat_.get());
  }
  const float* params = qat_ ? qat_->begin_eval(sparams_.data()) : sparams_.data();
  const double loss = evaluator_->run(params, nullptr, source, batches).loss;
  if (qat_) qat_->end_eval();
  return loss;
}

}  // namespace kd
