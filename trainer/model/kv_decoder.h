// Incremental decoding with a KV cache: a prompt is run once (prefill), then each new token
// is one row against the keys and values cached for its sequence, instead of the whole
// context again. Rows of several sequences (cache slots) of different lengths go through
// one call, so prefill and batched decoding are the same operation: row r appends token r
// to slot slots[r] at that slot's next position, its k/v are written there, and it attends
// to the slot's positions up to its own (causal by construction). The linears run through
// the same LinearHook as the frozen forward (integer GEMMs of a quantized model, QAT's fake
// quantization), the MLP through the trunk's own block.
//
// Memory: keys and values of every layer, slots × capacity × n_kv_heads · head_dim floats
// each, plus one call's activations for max_rows rows (bytes() counts both).
#pragma once

#include <cstdint>
#include <vector>

#include "trainer/model/llama.h"
#include "trainer/util/aligned_buffer.h"

namespace kd {

class KvDecoder {
 public:
  // capacity: positions per slot (the model's context); max_rows: rows one forward() takes.
  KvDecoder(const LlamaLayout& model, int slots, int capacity, int max_rows, int threads);
  static std::size_t bytes(const ModelSpec& s, int slots, int capacity, int max_rows, int threads);

  int slots() const { return slots_; }
  int capacity() const { return capacity_; }
  int max_rows() const { return max_rows_; }
  int length(int slot) const { return length_[std::size_t(slot)]; }
  void clear(int slot) { length_[std::size_t(slot)] = 0; }

  // Appends tokens[r] to slot slots[r], r < rows ≤ max_rows (a slot's rows in order); every
  // slot must have room (callers stop at capacity()). logits (n_out, vocab) of the rows
  // out_rows[0..n_out) (a prefill needs only its last row's). hook: nullable.
  void forward(const float* params, const std::int32_t* tokens, const int* slots, int rows, const int* out_rows,
               int n_out, float* logits, LinearHook<float>* hook = nullptr);

 private:
  const LlamaLayout& model_;
  int slots_, capacity_, max_rows_, threads_;
  std::vector<int> length_, pos_;
  AlignedBuffer<float> k_, v_;  // per layer: (slots, kv_heads, capacity, head_dim)
  AlignedBuffer<float> x_, xn_, rstd_, qkv_, att_, gu_, act_, out_x_, cos_, sin_, scratch_;
};

}  // namespace kd
