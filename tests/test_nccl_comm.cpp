// The NCCL Comm (trainer/dist/nccl_comm.h). Where a GPU is usable: a one-rank NCCL
// communicator (two ranks cannot share a GPU in NCCL, and lent machines have one GPU) runs
// every collective, the uneven ones and the byte broadcast, over the staging buffers, and must
// give the identity a one-rank group gives, bit for bit. Where none is: creating it fails with
// "NCCL cannot start" and the reason, which is what `runtime.comm: nccl` then reports (exit 3).
// Multi-rank NCCL is not checked here (docs/gpu.md).
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_ops.h"
#include "trainer/dist/nccl_comm.h"
#include "base/errors.h"

namespace {

TEST(NcclComm, OneRankCollectivesOrASaidReasonWhyNot) {
  const auto self = kd::dist::make_self_comm();
  const std::string why = kd::kern::cuda::unavailable_reason();
  if (!why.empty()) {
    try {
      kd::dist::make_nccl_comm(*self);
      FAIL() << "an NCCL Comm started without a usable GPU";
    } catch (const kd::RuntimeFailure& e) {
      EXPECT_NE(std::string(e.what()).find("NCCL cannot start"), std::string::npos) << e.what();
    }
    GTEST_SKIP() << "no GPU: " << why << " (the failure to start was checked)";
  }
  auto nccl = kd::dist::make_nccl_comm(*self);
  EXPECT_EQ(nccl->rank(), 0);
  EXPECT_EQ(nccl->size(), 1);
  EXPECT_NE(nccl->describe().find("NCCL"), std::string::npos) << nccl->describe();
  std::vector<float> x(1000003);
  std::iota(x.begin(), x.end(), -5.25f);
  const std::vector<float> want = x;
  nccl->all_reduce_sum(std::span<float>(x));
  EXPECT_EQ(x, want);
  std::vector<double> d{1.5, -2.25, 1e300};
  nccl->all_reduce_sum(std::span<double>(d));
  nccl->all_reduce_max(std::span<double>(d));
  EXPECT_EQ(d, (std::vector<double>{1.5, -2.25, 1e300}));
  std::vector<float> out(x.size());
  nccl->reduce_scatter_sum(x, out);
  EXPECT_EQ(out, want);
  std::fill(out.begin(), out.end(), 0.0f);
  nccl->all_gather(x, out);
  EXPECT_EQ(out, want);
  std::vector<float> v(7);
  nccl->reduce_scatter_sum_v(std::span<const float>(x.data(), 7), v, {7});
  EXPECT_EQ(v, std::vector<float>(want.begin(), want.begin() + 7));
  nccl->all_gather_v(std::span<const float>(x.data(), 7), v, {7});
  EXPECT_EQ(v, std::vector<float>(want.begin(), want.begin() + 7));
  std::vector<std::int64_t> n{42, -7};
  nccl->broadcast(std::span<std::int64_t>(n), 0);
  EXPECT_EQ(n, (std::vector<std::int64_t>{42, -7}));
  std::string text = "a checkpoint path";
  nccl->broadcast(std::span<char>(text.data(), text.size()), 0);
  EXPECT_EQ(text, "a checkpoint path");
  nccl->barrier();
  auto sub = nccl->split(0, 0, "sub-group");
  EXPECT_EQ(sub->size(), 1);
  sub->all_reduce_sum(std::span<float>(x.data(), 10));
  EXPECT_EQ(std::vector<float>(x.begin(), x.begin() + 10), std::vector<float>(want.begin(), want.begin() + 10));
}

}  // namespace
