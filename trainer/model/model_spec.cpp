#include "trainer/model/model_spec.h"

#include <utility>

#include "base/errors.h"

namespace kd {

std::int64_t ModelSpec::matmul_params() const {
  const std::int64_t d = d_model, f = d_ff;
  const std::int64_t attn = d * q_dim() + 2 * d * kv_dim() + q_dim() * d;
  return n_layers * (attn + 3 * d * f) + d * std::int64_t(vocab);
}

void ModelSpec::validate(const std::string& where) const {
  const std::pair<const char*, int> required[] = {{"vocab", vocab},     {"d_model", d_model},
                                                  {"n_layers", n_layers}, {"n_heads", n_heads},
                                                  {"n_kv_heads", n_kv_heads}, {"d_ff", d_ff}};
  for (const auto& [key, value] : required) {
    KD_CHECK_INPUT(value > 0, "{}.{} is required (the model shape has no default)", where, key);
  }
  KD_CHECK_INPUT(head_dim_override > 0 || d_model % n_heads == 0,
                 "{}: d_model ({}) must be divisible by n_heads ({}) (or give head_dim)", where, d_model, n_heads);
  KD_CHECK_INPUT(head_dim() % 2 == 0, "{}: head_dim = {} must be even for RoPE", where, head_dim());
  KD_CHECK_INPUT(n_heads % n_kv_heads == 0,
                 "{}: n_heads ({}) must be a multiple of n_kv_heads ({}) (grouped-query attention)",
                 where, n_heads, n_kv_heads);
  KD_CHECK_INPUT(rope_theta > 0, "{}: rope_theta must be > 0", where);
  const auto& r = rope_scaling;
  KD_CHECK_INPUT(r.factor == 0 || (r.factor >= 1 && r.low_freq_factor > 0 && r.high_freq_factor > r.low_freq_factor &&
                                   r.original_context > 0),
                 "{}: rope_scaling_factor {} needs rope_scaling_factor >= 1, 0 < rope_low_freq_factor < "
                 "rope_high_freq_factor and rope_original_context > 0 (got {}, {}, {})", where, r.factor,
                 r.low_freq_factor, r.high_freq_factor, r.original_context);
  KD_CHECK_INPUT(norm_eps > 0, "{}: norm_eps must be > 0", where);
}

}  // namespace kd
