#include "trainer/model/llama_cuda.h"

#include "trainer/model/llama_trunk.h"

namespace kd {

void llama_forward_train_cuda(const CudaOps& ops, const LlamaLayout& lay, const float* p, const std::int32_t* tokens,
                              CudaTrainActivations& a, LinearHook<float>* hook) {
  trunk::forward_train(ops, lay, p, tokens, a, hook);
}

void llama_backward_cuda(const CudaOps& ops, const LlamaLayout& lay, const float* p, float* g,
                         const std::int32_t* tokens, CudaTrainActivations& a, const float* dfinal,
                         std::span<const float* const> dhidden, LinearHook<float>* hook) {
  trunk::backward(ops, lay, p, g, tokens, a, dfinal, dhidden, hook);
}

void llama_forward_frozen_cuda(const CudaOps& ops, const LlamaLayout& lay, const float* p, const std::int32_t* tokens,
                               CudaFrozenActivations& a) {
  trunk::frozen_forward(ops, lay, p, tokens, a, nullptr, nullptr, nullptr);
}

void head_forward_cuda(const CudaOps& ops, const LlamaLayout& lay, const float* p, float* logits, const float* x,
                       int rows) {
  ops.linear_forward(logits, x, p + lay.head(), rows, lay.spec().vocab, lay.spec().d_model, false);
}

// the device activations' layouts (llama_trunk.h) for the CUDA ops
template void CudaTrainActivations::build<CudaOps>(const CudaOps&, const ModelSpec&, int, int, int, bool);
template void CudaFrozenActivations::build<CudaOps>(const CudaOps&, const ModelSpec&, int, int, int, std::vector<int>);
template const float* CudaFrozenActivations::hidden(int) const;

}  // namespace kd
