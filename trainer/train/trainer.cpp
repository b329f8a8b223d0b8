#include "trainer/train/trainer.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <random>
#include <string_view>
#include <thread>

#include "trainer/optim/lr_schedule.h"
#ifdef KDTRAIN_HAVE_CUDA
#include "trainer/distill/cuda_distill_step.h"
#endif
#include "trainer/train/batch_sources.h"
#include "base/errors.h"

namespace kd {

#ifndef KDTRAIN_HAVE_CUDA
// A build without the CUDA backend never makes a CUDA step (runtime.backend: cuda stops with
// a RuntimeFailure below); the type is only complete so that the unique_ptr member can be
// destroyed. Without it a machine without nvcc could not build kdtrain at all.
class CudaDistillStep {};
#endif

int set_threads(int threads, std::string_view what) {
  int n = threads > 0 ? threads : omp_get_max_threads();
  const std::string_view named = threads > 0 ? what : std::string_view("OMP_NUM_THREADS");
  // More threads than cores only contend, and thousands of them (OpenMP stacks, OpenBLAS
  // buffers) hung OpenBLAS under a memory limit: cap at the cores, saying so.
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  if (n > cores) {
    fmt::print(stderr, "kdtrain: {} {} is more than the {} cores of this machine: using {} threads\n", named, n,
               cores, cores);
    n = cores;
  }
  openblas_set_num_threads(n);
  const int blas = openblas_get_num_threads();  // OpenBLAS caps at the maximum it was built for
  if (blas > 0 && blas < n) {
    fmt::print(stderr, "kdtrain: {} {} is more than OpenBLAS allows ({}): using {} threads\n", named, n, blas, blas);
    n = blas;
  }
  omp_set_num_threads(n);  // one pool: our loops and OpenBLAS's GEMMs
  return n;
}

std::string blas_description() {
  const int par = openblas_get_parallel();  // 0 sequential, 1 pthreads, 2 OpenMP
  const char* model = par == 2 ? "openmp" : par == 1 ? "pthread" : "sequential";
  return fmt::format("{} | core {} | threading {} | threads {}", openblas_get_config(),
                     openblas_get_corename(), model, openblas_get_num_threads());
}

Trainer::Trainer(const Config& cfg, dist::Comm* dp, dist::Comm* tp) : cfg_(cfg), dp_(dp) {
  const auto& tr = cfg_.train;
  if (dp_ == nullptr) {
    own_comm_ = dist::make_self_comm();
    dp_ = own_comm_.get();
  }
  const int world = dp_->size();
  KD_CHECK_INPUT(tr.batch_size >= world,
                 "train.batch_size ({}) is smaller than the {} data-parallel ranks: every rank needs at least one "
                 "sequence of each micro-batch", tr.batch_size, world);
  const auto split = data::DataParallelSource::split(tr.batch_size, world);
  local_batch_ = split[std::size_t(dp_->rank())];
  for (int r = 0; r < dp_->rank(); ++r) dp_first_ += split[std::size_t(r)];
  student_ = std::make_unique<LlamaLayout>(cfg_.model, stable_);
  // a teacher cache replaces the teacher: no teacher model in this process
  // with tensor parallelism: this rank's shard of the teacher
  const bool tensor_parallel = tp != nullptr && tp->size() > 1;
  if (tensor_parallel) check_tensor_parallel(cfg_.teacher.spec, tp->size(), "parallel.tensor_parallel");
  if (cfg_.has_teacher && !uses_topk_targets()) {
    teacher_ = std::make_unique<LlamaLayout>(
        tensor_parallel ? shard_spec(cfg_.teacher.spec, tp->size()) : cfg_.teacher.spec, ttable_);
  }
  const DistillSection& spec = cfg_.distill;
  proj_ = declare_feature_projections(stable_, spec, cfg_.model,
                                      cfg_.has_teacher ? &cfg_.teacher.spec : nullptr);
  if (cfg_.has_quant) {
    qat_ = std::make_unique<quant::QatState>(quant::plan_quantization(cfg_.quant, cfg_.model), stable_);
  }
  // ZeRO-1: the buffer padded to world · shard; the padding stays zero
  const std::size_t total = stable_.total();
  shard_ = dist::zero_shard(total, world);
  shard_begin_ = std::min(total, shard_ * std::size_t(dp_->rank()));
  shard_end_ = std::min(total, shard_begin_ + shard_);
  sparams_.resize(shard_ * std::size_t(world), "the student's parameters");
  grads_.resize(sparams_.size(), "the student's gradients");
  if (world > 1) gshard_.resize(shard_, "the gradient shard");
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
  // a teacher from a checkpoint arrives through adopt_teacher_params (no second copy)
  if (teacher_ && cfg_.teacher.checkpoint.empty()) {
    tparams_.resize(ttable_.total(), "the teacher's parameters");
    teacher_->init(tparams_.data(), std::uint64_t(tr.seed) + 1, tr.init_std);
  }
  adamw_ = std::make_unique<AdamW<float>>(stable_, cfg_.optim, cfg_.has_quant ? cfg_.quant.scale_lr_ratio : 1.0,
                                          shard_begin_, shard_end_);
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
  if (cfg_.runtime.backend == Backend::cuda) {
#ifdef KDTRAIN_HAVE_CUDA
    namespace cu = kern::cuda;
    const auto math = [](GemmMath g) {
      return g == GemmMath::bf16 ? cu::MathMode::bf16 : g == GemmMath::tf32 ? cu::MathMode::tf32 : cu::MathMode::fp32;
    };
    const cu::MathMode smath = math(cfg_.runtime.cuda_math);
    const cu::MathMode tmath = cfg_.has_teacher && cfg_.teacher.bf16 ? cu::MathMode::bf16 : smath;
    cuda_step_ = std::make_unique<CudaDistillStep>(*student_, teacher_.get(), spec, proj_, local_batch_, tr.seq_len,
                                                   sparams_.size(), qat_.get(), smath, tmath);
    cuda_step_->pin_host(sparams_.data(), grads_.data(), sparams_.size());
#else
    throw RuntimeFailure("runtime.backend: cuda: this kdtrain was built without the CUDA backend");
#endif
  } else {
    dstep_ = std::make_unique<DistillStep<float>>(*student_, teacher_.get(), spec, proj_, local_batch_, tr.seq_len,
                                                  threads, qat_.get(), uses_topk_targets());
  }
  micro_first_.resize(std::size_t(tr.grad_accum));
  if (tensor_parallel && teacher_) {
    KD_ASSERT(dstep_ != nullptr, "a tensor-parallel teacher on the CUDA backend");
    teacher_tp_ = std::make_unique<TeacherTp>(*tp, *teacher_, local_batch_, tr.seq_len);
    dstep_->set_tensor_parallel(teacher_tp_.get());
  }
  tokens_.resize(std::size_t(tr.grad_accum) * std::size_t(local_batch_) * tr.seq_len);
  labels_.resize(tokens_.size());
  if (cfg_.has_teacher && spec.on_policy.enabled()) {
    KD_ASSERT(dstep_ && teacher_, "distill.on_policy needs the teacher in this process, on the CPU");
    rollouts_ = std::make_unique<OnPolicyRollouts>(*student_, spec.on_policy, local_batch_, tr.seq_len, threads,
                                                   std::uint64_t(tr.seed), -1);
    kd_only_.resize(tokens_.size());
  }
}

void Trainer::set_end_of_text(int eot) {
  if (rollouts_) rollouts_->set_end_of_text(eot);
}

Trainer::~Trainer() = default;

std::size_t Trainer::arena_bytes() const {
#ifdef KDTRAIN_HAVE_CUDA
  if (cuda_step_) return cuda_step_->device_bytes();
#endif
  return dstep_->arena_bytes();
}

std::string Trainer::first_nonfinite_gradient(const float* g, std::size_t begin, std::size_t end) const {
  // one pass over the flat buffer; the table only names the tensor when one is found
  const auto k = kern::first_non_finite<float>(g, end - begin);
  if (k < 0) return {};
  const std::size_t i = begin + std::size_t(k);
  for (const auto& t : stable_.tensors()) {
    if (i < t.offset + t.numel) return fmt::format("gradient of '{}' (element {})", t.name, i - t.offset);
  }
  return {};
}

std::string Trainer::freeze_teacher() {
  if (!cfg_.has_teacher || !cfg_.teacher.bf16 || !teacher_ || bf16_teacher_) return {};
  if (cuda_step_) return "teacher: GEMMs in bfloat16 on the GPU (teacher.bf16; float32 weights on the device)";
  bf16_teacher_ = std::make_unique<Bf16Teacher>(*teacher_, tparams_.data());  // with TP: this rank's shard
  const std::size_t released = bf16_teacher_->release_float_linears(tparams_.data());
  if (teacher_tp_) {
    teacher_tp_->set_bf16(bf16_teacher_.get());
  } else {
    dstep_->set_teacher_hook(bf16_teacher_.get());
  }
  return fmt::format("teacher: linear layers in bfloat16 ({:.1f} MB; {:.1f} MB of float32 released)",
                     double(bf16_teacher_->bytes()) / 1e6, double(released) / 1e6);
}

StepReport Trainer::step(data::BatchSource& source) {
  const auto& tr = cfg_.train;
  const int world = dp_->size();
  const double t0 = omp_get_wtime();
  double comm = 0;
  auto timed = [&](auto&& collective) {
    const double c0 = omp_get_wtime();
    collective();
    comm += omp_get_wtime() - c0;
  };
  StepReport rep;
  rep.step = step_;
  if (!cuda_step_) grads_.zero();  // CUDA: the step's gradients arrive whole from the device (end_step)
  if (!state_changes_only_in_update()) pass_state_gate();  // QAT scales, pruning masks: written from here
  if (pruner_) rep.prune_event = pruner_->begin_step(step_, sparams_.data(), *adamw_);
  // QAT: the forward reads fake-quantized weights
  const float* params = qat_ ? qat_->begin_step(step_, sparams_.data(), grads_.data()) : sparams_.data();

#ifdef KDTRAIN_HAVE_CUDA
  if (cuda_step_) {
    if (teacher_ && !teacher_on_device_) {  // the teacher's weights are final by the first step
      cuda_step_->set_teacher(tparams_.data(), tparams_.size());
      teacher_on_device_ = true;
    }
    cuda_step_->begin_step(params, stable_.total());
  }
#endif
  // The step's micro-batches first: the loss divides by the global batch's labelled tokens.
  if (world > 1 && dp_inner_ != &source) {
    dp_source_ = std::make_unique<data::DataParallelSource>(source, dp_->rank(), world, tr.batch_size);
    dp_inner_ = &source;
  }
  data::BatchSource& mine = world > 1 ? *dp_source_ : source;
  const std::size_t micro_len = std::size_t(local_batch_) * std::size_t(tr.seq_len);
  double labelled = 0;
  for (int micro = 0; micro < tr.grad_accum; ++micro) {
    micro_first_[std::size_t(micro)] = source.position() + (world > 1 ? dp_first_ : 0);
    std::int32_t* lab = labels_.data() + micro * micro_len;
    mine.next(tokens_.data() + micro * micro_len, lab, local_batch_, tr.seq_len);
    if (rollouts_) {  // the student samples its share of the rows (the step's weights, nothing observed)
      if (qat_) qat_->begin_sampling();
      const RolloutStats r = rollouts_->apply(params, qat_.get(), step_, micro_first_[std::size_t(micro)],
                                              tokens_.data() + micro * micro_len, lab,
                                              kd_only_.data() + micro * micro_len);
      if (qat_) qat_->end_sampling();
      rep.rollouts.sequences += r.sequences;
      rep.rollouts.tokens += r.tokens;
      rep.rollouts.seconds += r.seconds;
    }
    labelled += double(std::count_if(lab, lab + micro_len, [](std::int32_t l) { return l >= 0; }));
  }
  BatchTotals totals{labelled, double(tr.batch_size) * tr.seq_len * tr.grad_accum};
  timed([&] { dp_->all_reduce_sum(std::span<double>(&totals.tokens, 1)); });
  KD_CHECK_INPUT(totals.tokens > 0, "step {}: the global batch has no labelled tokens", step_);

  // sums over this rank's micro-batches: ce, kd (over tokens), feat (weighted by positions),
  // whether a loss was non-finite, whether a gradient of this rank's shard is (one reduction)
  std::array<double, 7> sums{};  // + [5] the sampled tokens' divergence, [6] their count
  std::string bad;
  for (int micro = 0; micro < tr.grad_accum; ++micro) {
    const std::int32_t* tok = tokens_.data() + micro * micro_len;
    if (uses_topk_targets()) {
      KD_ASSERT(targets_src_ != nullptr, "distillation from top-k targets without a source");
      targets_src_->fetch(micro_first_[std::size_t(micro)], local_batch_, tr.seq_len, tok, targets_);
    }
    KD_ASSERT(!teacher_ || tparams_.size() == ttable_.total(), "a teacher without its weights");
    const std::int32_t* lab = labels_.data() + micro * micro_len;
    StepLoss l;
#ifdef KDTRAIN_HAVE_CUDA
    if (cuda_step_) {
      l = cuda_step_->run(tok, lab, 1.0, &rep.phases, &totals);
    } else
#endif
    {
      l = dstep_->run(params, grads_.data(), tparams_.data(), tok, lab, 1.0, &rep.phases, &totals,
                      uses_topk_targets() ? &targets_ : nullptr,
                      rollouts_ ? kd_only_.data() + micro * micro_len : nullptr);
    }
    sums[0] += l.ce_sum;
    sums[1] += l.kd_sum;
    sums[2] += l.feat * double(micro_len) / totals.positions;
    sums[5] += l.kd_on_sum;
    sums[6] += double(l.on_tokens);
    if (bad.empty() && !std::isfinite(l.loss)) {
      bad = fmt::format("loss (micro-batch {}{}: ce={} kd={} feat={})", micro,
                        world > 1 ? fmt::format(" of data-parallel rank {}", dp_->rank()) : "", l.ce, l.kd, l.feat);
      sums[3] = 1;
    }
  }
#ifdef KDTRAIN_HAVE_CUDA
  if (cuda_step_) cuda_step_->end_step(grads_.data());
#endif
  if (dstep_) dstep_->finish_step(grads_.data());
  if (qat_) qat_->end_step(sparams_.data(), grads_.data(), dp_);

  // The gradient sum: each rank gets its shard's.
  float* g = grads_.data() + shard_begin_;
  if (world > 1) {
    timed([&] { dp_->reduce_scatter_sum(std::span<const float>(grads_.data(), grads_.size()), std::span<float>(gshard_.data(), shard_)); });
    g = gshard_.data();
  }
  const double t1 = omp_get_wtime();
  std::string bad_grad = first_nonfinite_gradient(g, shard_begin_, shard_end_);
  if (world > 1) {
    // every rank takes the same decision; the message names what this rank saw
    sums[4] = bad_grad.empty() ? 0.0 : 1.0;
    timed([&] { dp_->all_reduce_sum(std::span<double>(sums.data(), sums.size())); });
    if (bad_grad.empty() && sums[4] > 0) bad_grad = "gradient in another data-parallel rank's shard";
    if (bad.empty() && sums[3] > 0) bad = "loss on another data-parallel rank";
  }
  const bool teacher_term = teacher_ || uses_topk_targets();
  const double alpha = teacher_term ? cfg_.distill.alpha : 1.0;
  const bool kd = teacher_term && cfg_.distill.alpha < 1.0;
  rep.loss.ce = sums[0] / std::max(1.0, totals.tokens - sums[6]);  // over the data's labelled tokens
  rep.loss.kd = sums[1] / totals.tokens;
  rep.loss.feat = sums[2];
  rep.loss.on_tokens = std::int64_t(sums[6]);
  rep.loss.kd_on_sum = sums[5];
  const bool feature = !proj_.empty();
  rep.loss.loss = sums[6] > 0 ? on_policy_total_loss(cfg_.distill, alpha, feature, sums[0], sums[1], sums[5],
                                                     totals.tokens, rep.loss.feat)
                              : distill_total_loss(cfg_.distill, alpha, kd, feature, rep.loss.ce, rep.loss.kd,
                                                   rep.loss.feat);
  rep.loss.tokens = std::int64_t(totals.tokens);
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
    if (pruner_) pruner_->mask_gradients(g, shard_begin_, shard_end_);
    std::array<double, 1> sq{kern::sum_squares<float>(g, shard_end_ - shard_begin_)};
    if (world > 1) timed([&] { dp_->all_reduce_sum(sq); });
    rep.grad_norm = std::sqrt(sq[0]);
    const auto [position, length] = pruner_ ? pruner_->lr_position(step_, tr.steps) : std::pair{step_, tr.steps};
    rep.lr = lr_at(cfg_.optim, length, position);
    if (state_changes_only_in_update()) pass_state_gate();
    const bool sum = sum_next_ && state_changes_only_in_update();
    adamw_->step(sparams_.data() + shard_begin_, g, rep.lr, clip_factor(rep.grad_norm, cfg_.optim.grad_clip),
                 sum ? &sums_ : nullptr);
    if (sum) sums_step_ = step_ + 1;
    if (pruner_) pruner_->after_update(sparams_.data(), *adamw_, adamw_->m(), adamw_->v());
    if (world > 1) {
      float* own = sparams_.data() + shard_ * std::size_t(dp_->rank());
      timed([&] { dp_->all_gather(std::span<const float>(own, shard_), std::span<float>(sparams_.data(), sparams_.size())); });
    }
  }
  ++step_;
  sum_next_ = false;
  // ring reduce-scatter and all-gather each send (W − 1)/W of the buffer
  if (world > 1) rep.comm_bytes = 2.0 * double(world - 1) / world * double(sparams_.size()) * sizeof(float);
  rep.comm_seconds = comm;
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
