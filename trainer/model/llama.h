// A Llama-style decoder over the flat parameter buffer: token embedding, pre-norm
// RMSNorm, causal GQA attention with RoPE, SwiGLU MLP, final RMSNorm, tied or untied
// head, no biases. Tensor names follow Hugging Face's Llama layout one to one.
//
// The forward and backward here run the trunk (embedding → final norm). The output
// head is applied by the loss stage in row chunks, so [tokens × vocab] logits are
// never materialised for the whole batch (see trainer/distill/distill_step.h).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "trainer/model/linear_hook.h"
#include "trainer/model/model_spec.h"
#include "trainer/model/param_table.h"
#include "trainer/util/arena.h"

namespace kd {

// Offsets of one model's tensors in a table. q/k/v and gate/up are declared back to
// back, so each pair of rows (q;k;v) and (gate;up) is one matrix: one GEMM each.
class LlamaLayout {
 public:
  // Declares the tensors in `table` (names prefixed with `prefix`, e.g. "" for HF).
  LlamaLayout(const ModelSpec& spec, ParamTable& table, const std::string& prefix = "");

  struct Layer {
    std::size_t ln1, wqkv, wo, ln2, wgu, wdown;
  };
  const ModelSpec& spec() const { return spec_; }
  std::size_t embed() const { return embed_; }
  std::size_t final_norm() const { return final_norm_; }
  std::size_t head() const { return head_; }  // == embed() when tied
  const std::vector<Layer>& layers() const { return layers_; }

  // Initialises parameters at `base`: N(0, std) for matrices, 1 for norm weights.
  void init(float* base, std::uint64_t seed, double std) const;

 private:
  ModelSpec spec_;
  std::size_t embed_ = 0, final_norm_ = 0, head_ = 0;
  std::vector<Layer> layers_;
};

// The attention op's view of a model's fused qkv rows (q, then k, then v columns).
kern::AttnShape attn_shape(const ModelSpec& s, int batch, int seq);

// Buffers of a training forward: everything the backward needs, per layer. Storage: host
// memory, or the CUDA backend's device buffer (trainer/model/llama_cuda.h).
template <class T, class Storage = AlignedBuffer<T>>
struct TrainActivations {
  int batch = 0, seq = 0;
  std::vector<T*> hidden;  // L+1 residual states (M,d): [0] embeddings, [k] after block k-1
  struct Layer {
    T *xn1, *rstd1, *qkv, *att, *lse, *mid, *xn2, *rstd2, *gu, *act;
    // what the linears read when a hook transforms their inputs (null without one)
    T *in_qkv = nullptr, *in_o = nullptr, *in_gu = nullptr, *in_down = nullptr;
  };
  std::vector<Layer> layers;
  T *final_norm = nullptr, *final_rstd = nullptr;  // (M,d), (M)
  // backward scratch, shared by all layers
  T *dx, *dmid, *dxn, *dqkv, *datt, *dgu, *dact, *attn_scratch;
  T *rope_cos, *rope_sin;
  T* in_head = nullptr;  // (M,d) the head's transformed input (with input buffers)
  Arena<T, Storage> arena;
  // input_buffers: room for transformed linear inputs (a LinearHook in use). The first
  // form lays the buffers out for a backend's ops (llama_trunk.h); the second is the CPU's.
  template <class Ops>
  void build(const Ops& ops, const ModelSpec& s, int batch, int seq, int threads, bool input_buffers = false);
  void build(const ModelSpec& s, int batch, int seq, int threads, bool input_buffers = false);
};

// Buffers of a frozen (teacher) forward: one layer's scratch, reused by every layer,
// plus the final normed states and the hidden states the feature loss asked for.
template <class T, class Storage = AlignedBuffer<T>>
struct FrozenActivations {
  int batch = 0, seq = 0;
  int threads = 0;  // the attention scratch is sized for at most this many OpenMP threads
  T *x, *xn, *rstd, *qkv, *att, *lse, *gu, *act, *attn_scratch, *rope_cos, *rope_sin;
  T* final_norm = nullptr;                 // (M,d)
  std::vector<int> captured_index;         // hidden-state indices kept
  std::vector<T*> captured;                // (M,d) each
  Arena<T, Storage> arena;
  template <class Ops>
  void build(const Ops& ops, const ModelSpec& s, int batch, int seq, int threads, std::vector<int> capture);
  void build(const ModelSpec& s, int batch, int seq, int threads, std::vector<int> capture);
  const T* hidden(int index) const;        // a captured hidden state
};

// hook (nullable) transforms each linear layer's input (QAT); the activations must then
// have been built with input_buffers.
template <class T>
void llama_forward_train(const LlamaLayout& lay, const T* params, const std::int32_t* tokens,
                         TrainActivations<T>& a, LinearHook<T>* hook = nullptr);

// Backward of the trunk. dfinal (M,d): gradient w.r.t. the final normed states.
// dhidden[k] (nullable, size L+1): extra gradient w.r.t. hidden state k (feature loss).
// Parameter gradients accumulate into grads (same offsets as params).
template <class T>
void llama_backward(const LlamaLayout& lay, const T* params, T* grads, const std::int32_t* tokens,
                    TrainActivations<T>& a, const T* dfinal, std::span<const T* const> dhidden,
                    LinearHook<T>* hook = nullptr);

// hook (nullable): as in training, applied in place (evaluation of a quantized model,
// calibration).
template <class T>
void llama_forward_frozen(const LlamaLayout& lay, const T* params, const std::int32_t* tokens,
                          FrozenActivations<T>& a, LinearHook<T>* hook = nullptr);

// One-shot compression's pieces of the frozen forward (trainer/oneshot/block_sequential.h):
// the token embeddings into a.x, and decoder block `layer` applied to a.x in place, the
// hook called at its linear sites as in llama_forward_frozen.
void llama_embed_frozen(const LlamaLayout& lay, const float* params, const std::int32_t* tokens,
                        FrozenActivations<float>& a);
void llama_block_frozen(const LlamaLayout& lay, const float* params, int layer, FrozenActivations<float>& a,
                        LinearHook<float>* hook = nullptr);

// The frozen forward of one tensor-parallel shard (trainer/distill/teacher_tp.h): the
// shard is a Llama with this rank's heads and FFN neurons; every block's output projection
// is a partial sum that `sum_over_group` (an all-reduce over the tensor-parallel group)
// completes before the residual add, so the hidden states and final normed states are
// replicated. partial: (batch·seq, d_model) scratch.
void llama_forward_frozen_tp(const LlamaLayout& shard, const float* params, const std::int32_t* tokens,
                             FrozenActivations<float>& a, float* partial,
                             const std::function<void(float*, std::size_t)>& sum_over_group,
                             LinearHook<float>* hook = nullptr);

// Logits (rows, V) of the head on final normed states x, frozen use: the hook (nullable)
// runs the head itself or transforms x in place first.
template <class T>
void head_forward_frozen(const LlamaLayout& lay, const T* params, T* logits, T* x, int rows,
                         LinearHook<T>* hook = nullptr);

}  // namespace kd
