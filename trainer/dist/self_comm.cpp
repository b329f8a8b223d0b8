#include <unistd.h>

#include <algorithm>

#include <fmt/format.h>

#include "trainer/dist/comm.h"
#include "base/errors.h"

namespace kd::dist {

namespace {

class SelfComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string describe() const override { return "single process"; }
  void all_reduce_sum(std::span<float>) override {}
  void all_reduce_sum(std::span<double>) override {}
  void all_reduce_max(std::span<double>) override {}
  void reduce_scatter_sum(std::span<const float> in, std::span<float> out) override { copy(in, out, "reduce_scatter"); }
  void all_gather(std::span<const float> in, std::span<float> out) override { copy(in, out, "all_gather"); }
  void reduce_scatter_sum_v(std::span<const float> in, std::span<float> out,
                            const std::vector<std::size_t>& counts) override {
    KD_ASSERT(counts.size() == 1 && counts[0] == out.size(), "reduce_scatter_v: counts do not match one rank");
    copy(in, out, "reduce_scatter_v");
  }
  void all_gather_v(std::span<const float> in, std::span<float> out, const std::vector<std::size_t>& counts) override {
    KD_ASSERT(counts.size() == 1 && counts[0] == in.size(), "all_gather_v: counts do not match one rank");
    copy(in, out, "all_gather_v");
  }
  void broadcast(std::span<float>, int root) override { KD_ASSERT(root == 0, "broadcast from rank {} of 1", root); }
  void broadcast(std::span<std::int64_t>, int root) override { KD_ASSERT(root == 0, "broadcast from rank {} of 1", root); }
  void broadcast(std::span<char>, int root) override { KD_ASSERT(root == 0, "broadcast from rank {} of 1", root); }
  void send(std::span<const float>, int to, int) override { KD_ASSERT(false, "send to rank {} in a single process", to); }
  void recv(std::span<float>, int from, int) override { KD_ASSERT(false, "recv from rank {} in a single process", from); }
  void send(std::span<const std::int32_t>, int to, int) override { KD_ASSERT(false, "send to rank {} in a single process", to); }
  void recv(std::span<std::int32_t>, int from, int) override { KD_ASSERT(false, "recv from rank {} in a single process", from); }
  void barrier() override {}
  std::unique_ptr<Comm> split(int, int, const std::string&) override { return std::make_unique<SelfComm>(); }
  void set_timeout(double) override {}  // nothing to wait for
  std::string whoami() const override { return fmt::format("single process, pid {}", int(getpid())); }

 private:
  static void copy(std::span<const float> in, std::span<float> out, const char* what) {
    KD_ASSERT(in.size() == out.size(), "{}: {} elements in, {} out on one rank", what, in.size(), out.size());
    if (in.data() != out.data()) std::copy(in.begin(), in.end(), out.begin());
  }
};

}  // namespace

std::unique_ptr<Comm> make_self_comm() { return std::make_unique<SelfComm>(); }

}  // namespace kd::dist
