// GEMMs on cuBLAS. kdtrain's matrices are row-major; cuBLAS is column-major, so the product
// C = op(A)·op(B) is computed as C^T = op(B)^T·op(A)^T: swap the operands, keep the flags.
#include <cuda_bf16.h>

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

// Operands rounded to bfloat16 (nearest even) for the bf16 mode: cuBLAS's FAST_16BF compute
// type only permits down-conversion (on an H200 it gave tf32's results), so the rounding is
// done here (into process scratch: no allocation once the largest GEMM has run) and the GEMM
// takes bf16 inputs with float accumulation and output.
__global__ void to_bf16_k(__nv_bfloat16* y, const float* x, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    y[i] = __float2bfloat16_rn(x[i]);
  }
}

const __nv_bfloat16* to_bf16(__nv_bfloat16* dst, const float* src, std::size_t rows, std::size_t cols, int ld) {
  // a row-major (rows × cols) operand with leading dimension ld is rows·ld elements
  const std::size_t n = rows == 0 ? 0 : (rows - 1) * std::size_t(ld) + cols;
  if (n > 0) to_bf16_k<<<blocks_for(n, 256), 256>>>(dst, src, n);
  check_launch("gemm (bf16 rounding)");
  return dst;
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
          int ldb, float beta, float* c, int ldc, MathMode mode) {
  if (m == 0 || n == 0) return;
  const cublasOperation_t opa = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, opb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (mode == MathMode::bf16) {
    // A is (m × k) or, transposed, stored (k × m); B likewise (k × n) or (n × k)
    const std::size_t a_rows = trans_a ? k : m, a_cols = trans_a ? m : k;
    const std::size_t b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
    const std::size_t a_n = a_rows == 0 ? 0 : (a_rows - 1) * std::size_t(lda) + a_cols;
    const std::size_t b_n = b_rows == 0 ? 0 : (b_rows - 1) * std::size_t(ldb) + b_cols;
    auto* ws = scratch_of<__nv_bfloat16>(Scratch::gemm_bf16, a_n + b_n);  // the bf16 copies of both operands
    const __nv_bfloat16* a16 = to_bf16(ws, a, a_rows, a_cols, lda);
    const __nv_bfloat16* b16 = to_bf16(ws + a_n, b, b_rows, b_cols, ldb);
    check(cublasGemmEx(cublas(), opb, opa, n, m, k, &alpha, b16, CUDA_R_16BF, ldb, a16, CUDA_R_16BF, lda, &beta, c,
                       CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "cublasGemmEx (bf16)");
    return;
  }
  const cublasComputeType_t compute =
      mode == MathMode::fp32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F_FAST_TF32;  // pedantic: no shortcuts
  check(cublasGemmEx(cublas(), opb, opa, n, m, k, &alpha, b, CUDA_R_32F, ldb, a, CUDA_R_32F, lda, &beta, c, CUDA_R_32F,
                     ldc, compute, CUBLAS_GEMM_DEFAULT),
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
