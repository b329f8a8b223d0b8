// The `model` keys of a config (and the shape keys of `teacher`): a ModelSpec named field by
// field for the schema (base/schema.h). Kept apart from model_spec.h so that the model
// library itself needs no YAML.
#pragma once

#include "base/schema.h"
#include "trainer/model/model_spec.h"

namespace kd {

template <class V>
void visit(V& v, ModelSpec& s) {
  using namespace config;
  v.field("vocab", s.vocab, "vocabulary size (rows of the embedding and the head)", between(1, 1 << 24));
  v.field("d_model", s.d_model, "hidden size", between(2, 1 << 16));
  v.field("n_layers", s.n_layers, "number of decoder blocks", between(1, 1024));
  v.field("n_heads", s.n_heads, "attention (query) heads", between(1, 1024));
  v.field("n_kv_heads", s.n_kv_heads, "key/value heads (grouped-query attention; divides n_heads)", between(1, 1024));
  v.field("d_ff", s.d_ff, "SwiGLU inner size", between(1, 1 << 20));
  v.field("tie_embeddings", s.tie_embeddings, "the output head reuses the token embedding");
  v.field("rope_theta", s.rope_theta, "RoPE base frequency", above(0));
  v.field("norm_eps", s.norm_eps, "RMSNorm epsilon", above(0));
  v.field("head_dim", s.head_dim_override, "attention head size (0 = d_model / n_heads; set by structured pruning)",
          between(0, 1 << 16));
  v.field("rope_scaling_factor", s.rope_scaling.factor,
          "Llama 3 RoPE scaling (Hugging Face rope_type llama3): long wavelengths stretched by this factor; 0 = none",
          at_least(0));
  v.field("rope_low_freq_factor", s.rope_scaling.low_freq_factor, "Llama 3 RoPE scaling: low_freq_factor", above(0));
  v.field("rope_high_freq_factor", s.rope_scaling.high_freq_factor, "Llama 3 RoPE scaling: high_freq_factor", above(0));
  v.field("rope_original_context", s.rope_scaling.original_context,
          "Llama 3 RoPE scaling: original_max_position_embeddings", above(0));
}

}  // namespace kd
