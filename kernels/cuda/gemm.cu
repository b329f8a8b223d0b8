// GEMMs on cuBLAS. kdtrain's matrices are row-major; cuBLAS is column-major, so the product
// C = op(A)·op(B) is computed as C^T = op(B)^T·op(A)^T: swap the operands, keep the flags.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"

namespace kd::kern::cuda {

const char* math_mode_name(MathMode m) {
  switch (m) {
    case MathMode::fp32: return "fp32";
    case MathMode::tf32: return "tf32";
    case MathMode::bf16: return "bf16";
  }
  return "?";
}

namespace {

cublasComputeType_t compute_type(MathMode m) {
  switch (m) {
    case MathMode::fp32: return CUBLAS_COMPUTE_32F_PEDANTIC;  // no tensor-core shortcuts
    case MathMode::tf32: return CUBLAS_COMPUTE_32F_FAST_TF32;
    case MathMode::bf16: return CUBLAS_COMPUTE_32F_FAST_16BF;
  }
  return CUBLAS_COMPUTE_32F_PEDANTIC;
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
          int ldb, float beta, float* c, int ldc, MathMode mode) {
  if (m == 0 || n == 0) return;
  check(cublasGemmEx(cublas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha,
                     b, CUDA_R_32F, ldb, a, CUDA_R_32F, lda, &beta, c, CUDA_R_32F, ldc, compute_type(mode),
                     CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx");
}

void linear_forward(float* y, const float* x, const float* w, int m, int n, int k, bool accumulate, MathMode mode) {
  gemm(false, true, m, n, k, 1.0f, x, k, w, k, accumulate ? 1.0f : 0.0f, y, n, mode);
}

void linear_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, int m, int n, int k,
                     bool accumulate_dx, MathMode mode) {
  if (dx) gemm(false, false, m, k, n, 1.0f, dy, n, w, k, accumulate_dx ? 1.0f : 0.0f, dx, k, mode);
  gemm(true, false, n, k, m, 1.0f, dy, n, x, k, 1.0f, dw, k, mode);
}

}  // namespace kd::kern::cuda
