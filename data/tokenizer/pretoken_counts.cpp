#include "data/tokenizer/pretoken_counts.h"

#include <omp.h>

#include <algorithm>
#include <unordered_map>

#include "data/tokenizer/pretokenize.h"

namespace kd::data {

namespace {

constexpr std::size_t kChunkBytes = std::size_t(1) << 20;

bool ascii_non_space(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u < 0x80 && classify_at(std::string_view(&c, 1), 0).cls != CharClass::space;
}

// Cuts every document into chunks of about kChunkBytes at safe positions. Depends only on
// the text, never on the thread count, so the counts are the same for any thread count.
std::vector<std::string_view> chunk_documents(std::span<const std::string_view> documents) {
  std::vector<std::string_view> chunks;
  for (std::string_view doc : documents) {
    std::size_t begin = 0;
    while (doc.size() - begin > kChunkBytes) {
      std::size_t cut = begin + kChunkBytes;
      while (cut < doc.size() && !is_safe_cut(doc, cut)) ++cut;
      if (cut >= doc.size()) break;
      chunks.push_back(doc.substr(begin, cut - begin));
      begin = cut;
    }
    if (begin < doc.size()) chunks.push_back(doc.substr(begin));
  }
  return chunks;
}

}  // namespace

bool is_safe_cut(std::string_view text, std::size_t pos) {
  return pos >= 2 && pos < text.size() && text[pos - 1] == '\n' && ascii_non_space(text[pos - 2]) &&
         ascii_non_space(text[pos]);
}

PieceCounts count_pieces(std::span<const std::string_view> documents, int threads) {
  const std::vector<std::string_view> chunks = chunk_documents(documents);
  const int nt = std::max(1, threads > 0 ? threads : omp_get_max_threads());
  using Map = std::unordered_map<std::string_view, std::uint64_t>;
  std::vector<Map> per_thread(static_cast<std::size_t>(nt));
#pragma omp parallel num_threads(nt)
  {
    Map& local = per_thread[std::size_t(omp_get_thread_num())];
    std::vector<std::string_view> pieces;
#pragma omp for schedule(dynamic, 1)
    for (std::size_t c = 0; c < chunks.size(); ++c) {
      pieces.clear();
      pretokenize(chunks[c], pieces);
      for (std::string_view p : pieces) ++local[p];
    }
  }
  // Sums are order-independent; sorting fixes the order.
  Map& all = per_thread[0];
  for (std::size_t t = 1; t < per_thread.size(); ++t) {
    for (const auto& [p, n] : per_thread[t]) all[p] += n;
    Map().swap(per_thread[t]);
  }
  std::vector<std::pair<std::string_view, std::uint64_t>> sorted(all.begin(), all.end());
  std::sort(sorted.begin(), sorted.end());
  PieceCounts out;
  out.pieces.reserve(sorted.size());
  out.counts.reserve(sorted.size());
  for (const auto& [p, n] : sorted) {
    out.pieces.emplace_back(p);
    out.counts.push_back(n);
  }
  return out;
}

}  // namespace kd::data
