#include "trainer/oneshot/sparsity.h"

#include <algorithm>
#include <charconv>
#include <numeric>
#include <vector>

#include <fmt/format.h>

#include "base/errors.h"

namespace kd::oneshot {

std::string Sparsity::text() const { return nm() ? fmt::format("{}:{}", n, m) : fmt::format("{:g}%", 100 * fraction); }

void mark_smallest(const double* scores, int m, int n, std::uint8_t* pruned) {
  std::vector<int> order(m);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return scores[a] < scores[b]; });
  std::fill(pruned, pruned + m, 0);
  for (int k = 0; k < n; ++k) pruned[order[k]] = 1;
}

Sparsity parse_nm(const std::string& text, const std::string& key) {
  const auto colon = text.find(':');
  Sparsity s;
  auto num = [&](std::string_view v, int& out) {
    const auto r = std::from_chars(v.data(), v.data() + v.size(), out);
    return r.ec == std::errc() && r.ptr == v.data() + v.size();
  };
  const std::string_view t(text);
  KD_CHECK_INPUT(colon != std::string::npos && num(t.substr(0, colon), s.n) && num(t.substr(colon + 1), s.m) &&
                     s.n > 0 && s.n < s.m,
                 "{}: '{}' is not an N:M pattern (n zeros of every m inputs, 0 < n < m: 2:4, 4:8, 1:4)", key, text);
  return s;
}

void check_sparsity_for(const Sparsity& s, int cols, const std::string& layer, const std::string& key) {
  KD_CHECK_INPUT(!s.nm() || cols % s.m == 0, "{} {}: {} has rows of {} inputs, which groups of {} do not divide", key,
                 s.text(), layer, cols, s.m);
}

}  // namespace kd::oneshot
