#include "trainer/quant/qat.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "trainer/quant/quant_format.h"
#include "base/errors.h"

namespace kd::quant {

namespace {

constexpr int kSitesPerLayer = 5;  // LinearInput values
int site_key(int layer, LinearInput s) { return (layer + 1) * kSitesPerLayer + int(s); }

bool is_static(const kern::QuantFormat& f) { return f.granularity == kern::QuantGranularity::tensor; }

// LSQ's gradient scale: 1 / sqrt(elements a scale covers · qmax) (Esser et al. 2020).
float lsq_factor(std::size_t covered, const kern::QuantFormat& f) {
  const double qmax = double(common::int_grid(f.bits, f.symmetric).qmax);
  return float(1.0 / std::sqrt(double(covered) * qmax));
}

// Scales are positive; LSQ's optimizer step can push one through zero (PyTorch clamps too).
constexpr float kMinScale = 1.1920928955078125e-07f;

}  // namespace

QatState::QatState(const QuantPlan& plan, ParamTable& table) : plan_(plan), table_(&table) {
  for (const WeightPlan& wp : plan_.weights) {
    WeightSite w;
    w.plan = wp;
    w.offset = table.at(wp.tensor).offset;
    const std::size_t n = wp.format.scale_count(wp.rows, wp.cols);
    w.scale.assign(n, 1.0f);
    w.zero.assign(n, 0);
    if (plan_.learn_scales) {
      w.lsq = table[table.add("quant." + wp.module + ".weight_scale", {std::int64_t(n)}, kAuxiliary | kQuantScale)].offset;
    }
    weights_.push_back(std::move(w));
  }
  int max_layer = -1;
  for (const InputPlan& ip : plan_.inputs) max_layer = std::max(max_layer, ip.layer);
  site_index_.assign(std::size_t(max_layer + 2) * kSitesPerLayer, -1);
  for (const InputPlan& ip : plan_.inputs) {
    InputSite s;
    s.plan = ip;
    if (is_static(ip.format)) {
      s.observer = std::make_unique<Observer>(plan_.observer);
      s.step_observer = make_step_observer();
      if (plan_.learn_scales) {
        s.lsq = table[table.add("quant." + ip.module + ".input_scale", {1}, kAuxiliary | kQuantScale)].offset;
      }
    }
    site_index_[site_key(ip.layer, ip.site)] = int(inputs_.size());
    inputs_.push_back(std::move(s));
  }
}

const QatState::InputSite* QatState::site(int layer, LinearInput s) const {
  const int k = site_key(layer, s);
  if (k < 0 || k >= int(site_index_.size()) || site_index_[k] < 0) return nullptr;
  return &inputs_[std::size_t(site_index_[k])];
}

QatState::InputSite* QatState::site(int layer, LinearInput s) {
  return const_cast<InputSite*>(std::as_const(*this).site(layer, s));
}

QatState::TrainSite QatState::train_site(int layer, LinearInput which, int rows, int cols) const {
  KD_ASSERT(training_ && !calibrating_, "train_site outside a training step");
  TrainSite t;
  const InputSite* s = site(layer, which);
  if (s == nullptr) return t;
  const kern::QuantFormat& f = s->plan.format;
  t.format = &f;
  t.dynamic = !is_static(f);
  t.observe = !t.dynamic && observing_;
  // as forward(): a static site with no statistics yet stays in float
  t.quantize = fake_quant_ && (t.dynamic || s->calibrated);
  t.lsq = s->lsq;
  t.scale = s->scale;
  t.zero = s->zero;
  if (s->lsq != SIZE_MAX) t.lsq_grad_factor = lsq_factor(std::size_t(rows) * std::size_t(cols), f);
  return t;
}

void QatState::observe_step_input(int layer, LinearInput which, const float* x, std::size_t n) {
  InputSite* s = site(layer, which);
  KD_ASSERT(s != nullptr && s->step_observer, "observe_step_input at a site without an observer");
  s->step_observer->observe(x, n);
}

const float* QatState::scale_of(const InputSite& s) const {
  return s.lsq != SIZE_MAX ? params_ + s.lsq : &s.scale;
}

void QatState::calibrate_weight(WeightSite& w, const float* params, float* scale_out) {
  const WeightPlan& p = w.plan;
  const float* x = params + w.offset;
  if (plan_.weight_calibrator == Calibrator::minmax) {
    kern::quant_dynamic_scales(scale_out, w.zero.data(), x, p.format, p.rows, p.cols);
    return;
  }
  // MSE: the clip minimising the measured error, per scale slot
  const Target t = target_of(p.format);
  const int span = p.format.span(p.cols);
  const std::size_t n = w.scale.size();
  const bool whole = p.format.granularity == kern::QuantGranularity::tensor;
  const int per_row = whole ? 0 : p.cols / span;
#pragma omp parallel for schedule(dynamic, 16)
  for (std::size_t j = 0; j < n; ++j) {
    const float* slot = whole ? x : x + (j / per_row) * std::size_t(p.cols) + (j % per_row) * std::size_t(span);
    const std::size_t len = whole ? std::size_t(p.rows) * p.cols : std::size_t(span);
    const common::Affine a = to_affine(mse_range(slot, len, t), t);
    scale_out[j] = a.scale;
    w.zero[j] = std::int32_t(a.zero_point);
  }
}

std::unique_ptr<Observer> QatState::make_step_observer() const {
  ObserverConfig c = plan_.observer;
  if (c.kind == Calibrator::moving_average) c.kind = Calibrator::minmax;  // a step's batch: its min and max
  return std::make_unique<Observer>(c);
}

void QatState::init_lsq_input(InputSite& s, float* params) {
  const Target t = target_of(s.plan.format);
  const common::Affine a = to_affine(s.observer->range(t), t);
  params[s.lsq] = a.scale;
  s.zero = std::int32_t(a.zero_point);
  s.calibrated = true;
}

void QatState::update_input_scale(InputSite& s) {
  if (s.observer->empty()) return;
  const Target t = target_of(s.plan.format);
  const common::Affine a = to_affine(s.observer->range(t), t);
  s.scale = a.scale;
  s.zero = std::int32_t(a.zero_point);
  s.calibrated = true;
  s.dirty = false;
}

void QatState::begin_calibration(float* params) {
  calibrating_ = true;
  training_ = true;
  observing_ = true;
  fake_quant_ = false;
  params_ = params;
  grads_ = nullptr;
}

void QatState::finish_calibration() {
  for (WeightSite& w : weights_) {
    calibrate_weight(w, params_, w.lsq != SIZE_MAX ? params_ + w.lsq : w.scale.data());
    w.calibrated = true;
  }
  for (InputSite& s : inputs_) {
    if (!s.observer) continue;
    KD_CHECK_INPUT(!s.observer->empty(), "calibration saw no input of '{}' (no calibration batches?)", s.plan.module);
    if (s.lsq == SIZE_MAX) {
      update_input_scale(s);
    } else {
      init_lsq_input(s, params_);
    }
  }
  calibrating_ = false;
  training_ = true;
}

bool QatState::input_quant(const std::string& module, const float* params, float* scale, std::int32_t* zero) const {
  for (const InputSite& s : inputs_) {
    if (s.plan.module != module || !s.observer) continue;
    *scale = s.lsq != SIZE_MAX ? params[s.lsq] : s.scale;
    *zero = s.zero;
    return true;
  }
  return false;
}

const float* QatState::begin_step(std::int64_t step, float* params, float* grads) {
  observing_ = plan_.freeze_observers == 0 || step < plan_.freeze_observers;
  fake_quant_ = step >= plan_.fake_quant_start;
  training_ = true;
  params_ = params;
  grads_ = grads;
  // one parallel region over the tensors (each kernel then runs on its thread alone):
  // dozens of small regions per step cost more in barriers than the work on shared cores
#pragma omp parallel for schedule(dynamic, 1)
  for (std::size_t i = 0; i < weights_.size(); ++i) {
    WeightSite& w = weights_[i];
    if (w.lsq != SIZE_MAX) {
      if (!w.calibrated && fake_quant_) {
        calibrate_weight(w, params, params + w.lsq);
        w.calibrated = true;
      }
    } else if ((observing_ && !w.held) || !w.calibrated) {
      calibrate_weight(w, params, w.scale.data());
      w.calibrated = true;
    }
  }
  // input scales from the statistics merged at the end of earlier steps (fixed for the step)
  if (fake_quant_) {
    for (InputSite& s : inputs_) {
      if (!s.observer) continue;
      if (s.lsq == SIZE_MAX && s.dirty) update_input_scale(s);
      if (s.lsq != SIZE_MAX && !s.calibrated && !s.observer->empty()) init_lsq_input(s, params);
    }
  }
  clamp_lsq_scales(params);
  return begin_eval_weights(params);
}

bool QatState::hold_weight_scales(const std::string& module, const kern::QuantFormat& format,
                                  const std::vector<float>& scale, const std::vector<std::int32_t>& zero,
                                  float* params) {
  for (WeightSite& w : weights_) {
    if (w.plan.module != module) continue;
    const kern::QuantFormat& f = w.plan.format;
    const bool same = f.kind == format.kind && f.bits == format.bits && f.symmetric == format.symmetric &&
                      f.granularity == format.granularity && f.group == format.group &&
                      scale.size() == w.scale.size() && (zero.empty() || zero.size() == w.zero.size());
    if (!same) return false;
    std::copy(scale.begin(), scale.end(), w.lsq != SIZE_MAX ? params + w.lsq : w.scale.data());
    if (zero.empty()) {
      std::fill(w.zero.begin(), w.zero.end(), 0);
    } else {
      std::copy(zero.begin(), zero.end(), w.zero.begin());
    }
    w.calibrated = true;
    w.held = true;
    return true;
  }
  return false;
}

void QatState::clamp_lsq_scales(float* params) const {
  for (const WeightSite& w : weights_) {
    if (w.lsq == SIZE_MAX) continue;
    for (std::size_t j = 0; j < w.scale.size(); ++j) params[w.lsq + j] = std::fmax(std::fabs(params[w.lsq + j]), kMinScale);
  }
  for (const InputSite& s : inputs_) {
    if (s.lsq != SIZE_MAX) params[s.lsq] = std::fmax(std::fabs(params[s.lsq]), kMinScale);
  }
}

const float* QatState::begin_eval(float* params) {
  training_ = false;
  params_ = params;
  grads_ = nullptr;
  for (WeightSite& w : weights_) {
    if (!w.calibrated && w.lsq == SIZE_MAX) {
      calibrate_weight(w, params, w.scale.data());
      w.calibrated = true;
    }
  }
  clamp_lsq_scales(params);
  return begin_eval_weights(params);
}

const float* QatState::begin_eval_weights(float* params) {
  if (!fake_quant_) return params;
  if (shadow_.size() != table_->total()) shadow_.resize(table_->total());
  std::memcpy(shadow_.data(), params, sizeof(float) * table_->total());
#pragma omp parallel for schedule(dynamic, 1)
  for (std::size_t i = 0; i < weights_.size(); ++i) {
    const WeightSite& w = weights_[i];
    const float* s = w.lsq != SIZE_MAX ? params + w.lsq : w.scale.data();
    kern::fake_quant_forward(shadow_.data() + w.offset, params + w.offset, s, w.zero.data(), w.plan.format,
                             w.plan.rows, w.plan.cols);
  }
  return shadow_.data();
}

void QatState::end_step(const float* params, float* grads, dist::Comm* group) {
  // the step's input statistics, over the whole data-parallel group, as one batch
  if (observing_) {
    for (InputSite& s : inputs_) {
      if (!s.observer) continue;
      if (group != nullptr && group->size() > 1) s.step_observer->all_reduce(*group);
      if (s.step_observer->empty()) continue;
      s.observer->merge(*s.step_observer);
      s.step_observer = make_step_observer();
      s.dirty = true;
      if (fake_quant_ && s.lsq == SIZE_MAX) update_input_scale(s);  // the next step's scale
    }
  }
  if (!fake_quant_) return;
#pragma omp parallel for schedule(dynamic, 1)
  for (std::size_t i = 0; i < weights_.size(); ++i) {
    const WeightSite& w = weights_[i];
    const auto& p = w.plan;
    if (w.lsq != SIZE_MAX) {
      const float gf = lsq_factor(std::size_t(p.format.span(p.cols)) *
                                      (p.format.granularity == kern::QuantGranularity::tensor ? p.rows : 1),
                                  p.format);
      kern::fake_quant_backward_lsq(grads + w.offset, grads + w.lsq, grads + w.offset, params + w.offset,
                                    params + w.lsq, w.zero.data(), p.format, p.rows, p.cols, gf);
    } else {
      kern::fake_quant_backward_ste(grads + w.offset, grads + w.offset, params + w.offset, w.scale.data(),
                                    w.zero.data(), p.format, p.rows, p.cols);
    }
  }
}

const float* QatState::forward(int layer, LinearInput which, float* x, float* buf, int rows, int cols) {
  InputSite* s = site(layer, which);
  const std::size_t n = std::size_t(rows) * cols;
  auto pass = [&]() -> const float* {
    if (buf == nullptr) return x;
    std::memcpy(buf, x, sizeof(float) * n);
    return buf;
  };
  if (s == nullptr) return pass();
  const kern::QuantFormat& f = s->plan.format;
  if (is_static(f)) {
    // Training: the step's statistics go to the step observer, merged (and reduced over
    // the data-parallel group) at the end of the step, so a step's scales are fixed and
    // the same on every rank. PTQ calibration, and an evaluation of a site that has no
    // scale yet, observe directly; the range is computed only when a quantized forward
    // needs it (KL is not cheap).
    if (sampling_) {
      // no statistics from samples
    } else if (calibrating_ || (!training_ && !s->calibrated)) {
      s->observer->observe(x, n);
      s->dirty = true;
    } else if (training_ && observing_) {
      s->step_observer->observe(x, n);
    }
    if (!training_ && !sampling_ && fake_quant_) {
      if (s->lsq == SIZE_MAX && s->dirty) update_input_scale(*s);
      if (s->lsq != SIZE_MAX && !s->calibrated && params_ != nullptr) init_lsq_input(*s, params_);
    }
    // a step before any statistics were merged: the input stays in float (backward too)
    if (!s->calibrated) return pass();
  }
  if (!fake_quant_) return pass();
  float* out = buf ? buf : x;
  if (is_static(f)) {
    kern::fake_quant_forward(out, x, scale_of(*s), &s->zero, f, rows, cols);
  } else {
    s->row_scale.resize(std::size_t(rows));
    s->row_zero.resize(std::size_t(rows));
    kern::quant_dynamic_scales(s->row_scale.data(), s->row_zero.data(), x, f, rows, cols);
    kern::fake_quant_forward(out, x, s->row_scale.data(), s->row_zero.data(), f, rows, cols);
  }
  return out;
}

void QatState::backward(int layer, LinearInput which, float* dx, const float* x, int rows, int cols) {
  InputSite* s = site(layer, which);
  if (s == nullptr || !fake_quant_) return;  // the forward passed a plain copy
  const kern::QuantFormat& f = s->plan.format;
  if (is_static(f) && !s->calibrated) return;  // so did it before the first statistics
  if (!is_static(f)) {
    // the scales of this batch again (deterministic), then the straight-through estimator
    s->row_scale.resize(std::size_t(rows));
    s->row_zero.resize(std::size_t(rows));
    kern::quant_dynamic_scales(s->row_scale.data(), s->row_zero.data(), x, f, rows, cols);
    kern::fake_quant_backward_ste(dx, dx, x, s->row_scale.data(), s->row_zero.data(), f, rows, cols);
  } else if (s->lsq != SIZE_MAX) {
    KD_ASSERT(grads_ != nullptr, "LSQ backward outside a training step");
    kern::fake_quant_backward_lsq(dx, grads_ + s->lsq, dx, x, params_ + s->lsq, &s->zero, f, rows, cols,
                                  lsq_factor(std::size_t(rows) * cols, f));
  } else {
    kern::fake_quant_backward_ste(dx, dx, x, &s->scale, &s->zero, f, rows, cols);
  }
}

// ---------------------------------------------------------------- checkpoint state

std::vector<ckpt::TensorView> QatState::state_tensors() const {
  std::vector<ckpt::TensorView> out;
  calibrated_flags_.clear();
  for (const WeightSite& w : weights_) {
    const auto n = std::int64_t(w.scale.size());
    out.push_back({w.plan.module + ".weight_scale", {n}, w.scale.data(), ckpt::DType::f32});
    out.push_back({w.plan.module + ".weight_zero", {n}, w.zero.data(), ckpt::DType::i32});
    calibrated_flags_.push_back((w.calibrated ? 1 : 0) | (w.held ? 2 : 0));
  }
  observer_states_.clear();
  observer_states_.reserve(inputs_.size());
  for (const InputSite& s : inputs_) {
    out.push_back({s.plan.module + ".input_scale", {1}, &s.scale, ckpt::DType::f32});
    out.push_back({s.plan.module + ".input_zero", {1}, &s.zero, ckpt::DType::i32});
    calibrated_flags_.push_back((s.calibrated ? 1 : 0) | (s.dirty ? 2 : 0));
    if (s.observer) {
      observer_states_.push_back(s.observer->state());
      const auto& st = observer_states_.back();
      out.push_back({s.plan.module + ".input_observer", {std::int64_t(st.size())}, st.data(), ckpt::DType::f64});
    }
  }
  out.push_back({"calibrated", {std::int64_t(calibrated_flags_.size())}, calibrated_flags_.data(), ckpt::DType::i32});
  return out;
}

void QatState::load_state(const ckpt::CheckpointReader& r) {
  const std::string g = "quant";
  KD_CHECK_INPUT(r.has_tensor(g, "calibrated"),
                 "{}: the checkpoint has no quantizer state (group \"quant\"): it was not written by a run with a "
                 "quant section",
                 r.path());
  const std::int64_t n_flags = std::int64_t(weights_.size() + inputs_.size());
  std::vector<std::int32_t> flags(std::size_t(n_flags), 0);
  r.read_typed(g, "calibrated", {n_flags}, ckpt::DType::i32, flags.data());
  std::size_t k = 0;
  for (WeightSite& w : weights_) {
    const auto n = std::int64_t(w.scale.size());
    r.read_typed(g, w.plan.module + ".weight_scale", {n}, ckpt::DType::f32, w.scale.data());
    r.read_typed(g, w.plan.module + ".weight_zero", {n}, ckpt::DType::i32, w.zero.data());
    w.calibrated = (flags[k] & 1) != 0;
    w.held = (flags[k++] & 2) != 0;
  }
  for (InputSite& s : inputs_) {
    r.read_typed(g, s.plan.module + ".input_scale", {1}, ckpt::DType::f32, &s.scale);
    r.read_typed(g, s.plan.module + ".input_zero", {1}, ckpt::DType::i32, &s.zero);
    s.calibrated = (flags[k] & 1) != 0;
    s.dirty = (flags[k++] & 2) != 0;
    if (s.observer) {
      const std::string name = s.plan.module + ".input_observer";
      KD_CHECK_INPUT(r.has_tensor(g, name), "{}: quantizer state lacks tensor \"{}/{}\" (another quant config?)",
                     r.path(), g, name);
      const auto shape = r.shape(g, name);
      KD_CHECK_INPUT(shape.size() == 1, "{}: tensor \"{}/{}\" must be one-dimensional", r.path(), g, name);
      std::vector<double> st(static_cast<std::size_t>(shape[0]));
      r.read_typed(g, name, shape, ckpt::DType::f64, st.data());
      s.observer->load_state(st);
    }
  }
}

QatState::WeightQuant QatState::weight_quant(const std::string& module, const float* params) const {
  for (const WeightSite& w : weights_) {
    if (w.plan.module == module) {
      return {w.lsq != SIZE_MAX ? params + w.lsq : w.scale.data(), w.zero.data(), w.scale.size()};
    }
  }
  return {nullptr, nullptr, 0};
}

std::string QatState::summary() const {
  std::string s;
  std::size_t wq = 0, iq = 0;
  for (const WeightSite& w : weights_) wq += std::size_t(w.plan.rows) * w.plan.cols;
  iq = inputs_.size();
  s += fmt::format("quant: {} weight tensors ({} elements), {} linear inputs; fake quantization from step {}, "
                   "observers {}, {}",
                   weights_.size(), wq, iq, plan_.fake_quant_start,
                   plan_.freeze_observers ? fmt::format("frozen at step {}", plan_.freeze_observers) : "never frozen",
                   plan_.learn_scales ? "LSQ scales" : "straight-through estimator");
  return s;
}

}  // namespace kd::quant
