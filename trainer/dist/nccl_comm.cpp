#include "trainer/dist/nccl_comm.h"

#include <nccl.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "kernels/cuda/cuda_ops.h"
#include "base/errors.h"

namespace kd::dist {

namespace cu = kern::cuda;

bool nccl_built() { return true; }

namespace {

void check(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) {
    throw RuntimeFailure(fmt::format("NCCL {} failed: {} ({})", what, ncclGetErrorString(r), int(r)));
  }
}

template <class T>
ncclDataType_t nccl_type();
template <> ncclDataType_t nccl_type<float>() { return ncclFloat32; }
template <> ncclDataType_t nccl_type<double>() { return ncclFloat64; }
template <> ncclDataType_t nccl_type<std::int64_t>() { return ncclInt64; }
template <> ncclDataType_t nccl_type<std::int32_t>() { return ncclInt32; }
template <> ncclDataType_t nccl_type<char>() { return ncclChar; }

class NcclComm final : public Comm {
 public:
  NcclComm(Comm& over, std::unique_ptr<Comm> owned) : owned_(std::move(owned)), over_(owned_ ? *owned_ : over) {
    // Every rank checks what it can before the collective init, and the group agrees, so no
    // rank waits in ncclCommInitRank for one that gave up.
    std::string why = cu::unavailable_reason();
    ncclUniqueId id{};
    if (why.empty() && over_.rank() == 0) {
      const ncclResult_t r = ncclGetUniqueId(&id);
      if (r != ncclSuccess) why = fmt::format("ncclGetUniqueId: {}", ncclGetErrorString(r));
    }
    std::array<double, 1> failed{why.empty() ? 0.0 : 1.0};
    over_.all_reduce_max(failed);
    if (failed[0] > 0) {
      throw RuntimeFailure(fmt::format("NCCL cannot start on {} of {}: {}", over_.whoami(), over_.describe(),
                                       why.empty() ? "another rank could not (see its message)" : why));
    }
    over_.broadcast(std::span<char>(reinterpret_cast<char*>(&id), sizeof id), 0);
    check(ncclCommInitRank(&comm_, over_.size(), id, over_.rank()), "ncclCommInitRank");
    int v = 0;
    ncclGetVersion(&v);
    version_ = v;
  }
  ~NcclComm() override {
    if (comm_) ncclCommDestroy(comm_);
  }

  int rank() const override { return over_.rank(); }
  int size() const override { return over_.size(); }
  std::string describe() const override {
    return fmt::format("NCCL {} over {}", version_, over_.describe());
  }
  const Comm& host_group() const override { return over_.host_group(); }

  void all_reduce_sum(std::span<float> x) override { all_reduce(x, ncclSum, "all_reduce (sum)"); }
  void all_reduce_sum(std::span<double> x) override { all_reduce(x, ncclSum, "all_reduce (sum)"); }
  void all_reduce_max(std::span<double> x) override { all_reduce(x, ncclMax, "all_reduce (max)"); }

  void reduce_scatter_sum(std::span<const float> in, std::span<float> out) override {
    KD_ASSERT(in.size() == out.size() * std::size_t(size()), "reduce_scatter: {} in, {} out, {} ranks", in.size(),
              out.size(), size());
    float* d = stage<float>(in.size() + out.size());
    cu::copy_to_device(d, in.data(), in.size_bytes());
    check(ncclReduceScatter(d, d + in.size(), out.size(), ncclFloat32, ncclSum, comm_, nullptr), "reduce_scatter");
    finish(out.data(), d + in.size(), out.size_bytes());
  }
  void all_gather(std::span<const float> in, std::span<float> out) override {
    KD_ASSERT(out.size() == in.size() * std::size_t(size()), "all_gather: {} in, {} out, {} ranks", in.size(),
              out.size(), size());
    float* d = stage<float>(in.size() + out.size());
    cu::copy_to_device(d, in.data(), in.size_bytes());
    check(ncclAllGather(d, d + in.size(), in.size(), ncclFloat32, comm_, nullptr), "all_gather");
    finish(out.data(), d + in.size(), out.size_bytes());
  }
  // Uneven counts: every part padded to the largest, then the equal-count call.
  void reduce_scatter_sum_v(std::span<const float> in, std::span<float> out,
                            const std::vector<std::size_t>& counts) override {
    const std::size_t c = *std::max_element(counts.begin(), counts.end()), w = std::size_t(size());
    std::vector<float> padded(c * w, 0.0f);
    std::size_t at = 0;
    for (std::size_t r = 0; r < w; ++r) {
      std::copy_n(in.data() + at, counts[r], padded.data() + r * c);
      at += counts[r];
    }
    std::vector<float> mine(c);
    reduce_scatter_sum(padded, mine);
    std::copy_n(mine.data(), counts[std::size_t(rank())], out.data());
  }
  void all_gather_v(std::span<const float> in, std::span<float> out, const std::vector<std::size_t>& counts) override {
    const std::size_t c = *std::max_element(counts.begin(), counts.end()), w = std::size_t(size());
    std::vector<float> mine(c, 0.0f), all(c * w);
    std::copy(in.begin(), in.end(), mine.begin());
    all_gather(mine, all);
    std::size_t at = 0;
    for (std::size_t r = 0; r < w; ++r) {
      std::copy_n(all.data() + r * c, counts[r], out.data() + at);
      at += counts[r];
    }
  }
  void broadcast(std::span<float> x, int root) override { bcast(x, root); }
  void broadcast(std::span<std::int64_t> x, int root) override { bcast(x, root); }
  void broadcast(std::span<char> x, int root) override { bcast(x, root); }
  void send(std::span<const float> x, int to, int tag) override { p2p_send(x, to, tag); }
  void recv(std::span<float> x, int from, int tag) override { p2p_recv(x, from, tag); }
  void send(std::span<const std::int32_t> x, int to, int tag) override { p2p_send(x, to, tag); }
  void recv(std::span<std::int32_t> x, int from, int tag) override { p2p_recv(x, from, tag); }
  void barrier() override { over_.barrier(); }
  std::unique_ptr<Comm> split(int color, int key, const std::string& name) override {
    return std::make_unique<NcclComm>(over_, over_.split(color, key, name));
  }
  void set_timeout(double seconds) override { over_.set_timeout(seconds); }
  std::string whoami() const override { return over_.whoami(); }

 private:
  template <class T>
  T* stage(std::size_t n) {
    if (staging_.bytes() < n * sizeof(T)) staging_ = cu::DeviceBytes(n * sizeof(T));  // grows once per size
    return static_cast<T*>(staging_.get());
  }
  void finish(void* host, const void* device, std::size_t bytes) {
    cu::synchronize();
    cu::copy_to_host(host, device, bytes);
  }
  template <class T>
  void all_reduce(std::span<T> x, ncclRedOp_t op, const char* what) {
    T* d = stage<T>(x.size());
    cu::copy_to_device(d, x.data(), x.size_bytes());
    check(ncclAllReduce(d, d, x.size(), nccl_type<T>(), op, comm_, nullptr), what);
    finish(x.data(), d, x.size_bytes());
  }
  template <class T>
  void bcast(std::span<T> x, int root) {
    T* d = stage<T>(x.size());
    if (rank() == root) cu::copy_to_device(d, x.data(), x.size_bytes());
    check(ncclBroadcast(d, d, x.size(), nccl_type<T>(), root, comm_, nullptr), "broadcast");
    finish(x.data(), d, x.size_bytes());
  }
  // NCCL has no tags: messages between two ranks arrive in the order they were sent, which is
  // how the trainer uses them (one stream of messages per pair).
  template <class T>
  void p2p_send(std::span<const T> x, int to, int) {
    T* d = stage<T>(x.size());
    cu::copy_to_device(d, x.data(), x.size_bytes());
    check(ncclSend(d, x.size(), nccl_type<T>(), to, comm_, nullptr), "send");
    cu::synchronize();
  }
  template <class T>
  void p2p_recv(std::span<T> x, int from, int) {
    T* d = stage<T>(x.size());
    check(ncclRecv(d, x.size(), nccl_type<T>(), from, comm_, nullptr), "recv");
    finish(x.data(), d, x.size_bytes());
  }

  std::unique_ptr<Comm> owned_;  // a split's MPI group
  Comm& over_;
  ncclComm_t comm_ = nullptr;
  int version_ = 0;
  cu::DeviceBytes staging_;
};

}  // namespace

std::unique_ptr<Comm> make_nccl_comm(Comm& over) { return std::make_unique<NcclComm>(over, nullptr); }

}  // namespace kd::dist
