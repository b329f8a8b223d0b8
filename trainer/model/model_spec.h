// The shape of a Llama-style decoder (teacher or student).
#pragma once

#include <cstdint>
#include <string>

#include "kernels/kernels.h"

namespace kd {

struct ModelSpec {
  int vocab = 0;
  int d_model = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;  // grouped-query attention: n_heads % n_kv_heads == 0
  int d_ff = 0;
  bool tie_embeddings = false;
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  int head_dim_override = 0;  // config `head_dim`; 0 = d_model / n_heads (structured pruning changes n_heads only)
  kern::RopeScaling rope_scaling;  // Llama 3's (factor 0: none)

  int head_dim() const { return head_dim_override > 0 ? head_dim_override : d_model / n_heads; }
  int q_dim() const { return n_heads * head_dim(); }
  int kv_dim() const { return n_kv_heads * head_dim(); }
  int qkv_dim() const { return q_dim() + 2 * kv_dim(); }
  // Weights that take part in matmuls, head included (the FLOP count's N).
  std::int64_t matmul_params() const;
  // Throws InputError naming `where` (e.g. "student") when the shape is inconsistent.
  void validate(const std::string& where) const;
};

}  // namespace kd
