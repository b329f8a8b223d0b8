#include "trainer/oneshot/block_sequential.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "base/errors.h"
#include "data/token_dataset.h"

namespace kd::oneshot {

namespace {

// Records one site's inputs; every other site passes through.
class StatsHook final : public LinearHook<float> {
 public:
  StatsHook(LinearInput target, InputStats& stats) : target_(target), stats_(stats) {}
  const float* forward(int, LinearInput site, float* x, float*, int rows, int) override {
    if (site == target_) stats_.add(x, rows);
    return x;
  }
  void backward(int, LinearInput, float*, const float*, int, int) override {}

 private:
  LinearInput target_;
  InputStats& stats_;
};

// Sequences per forward: the largest divisor of `samples` up to 8 (one activation buffer).
int batch_of(int samples) {
  for (int b = std::min(samples, 8); b > 1; --b) {
    if (samples % b == 0) return b;
  }
  return 1;
}

}  // namespace

std::vector<Site> block_sites(const ModelSpec& spec, int layer) {
  (void)spec;
  const std::string p = fmt::format("model.layers.{}.", layer);
  return {
      {layer, LinearInput::qkv, {p + "self_attn.q_proj", p + "self_attn.k_proj", p + "self_attn.v_proj"},
       p + "input_layernorm.weight", ""},
      {layer, LinearInput::o, {p + "self_attn.o_proj"}, "", p + "self_attn.v_proj"},
      {layer, LinearInput::gate_up, {p + "mlp.gate_proj", p + "mlp.up_proj"}, p + "post_attention_layernorm.weight", ""},
      {layer, LinearInput::down, {p + "mlp.down_proj"}, "", p + "mlp.up_proj"},
  };
}

std::vector<std::int32_t> calibration_tokens(std::shared_ptr<const data::TokenShard> shard, int vocab, int samples,
                                             int seq_len, std::uint64_t seed, const std::string& key) {
  KD_CHECK_INPUT(shard->size() > std::uint64_t(seq_len),
                 "{}: {} holds {} tokens, fewer than one calibration window of {} + 1", key, shard->path(),
                 shard->size(), seq_len);
  data::TokenDataset ds(std::move(shard), vocab, seq_len, seed);
  std::vector<std::int32_t> tokens(std::size_t(samples) * seq_len), labels(tokens.size());
  ds.next(tokens.data(), labels.data(), samples, seq_len);
  return tokens;
}

void compress_block_sequential(const LlamaLayout& lay, float* params, const std::vector<std::int32_t>& tokens,
                               int samples, int seq_len, int threads, SiteCompressor& c,
                               const std::function<void(const std::string&)>& progress) {
  const ModelSpec& s = lay.spec();
  const int batch = batch_of(samples), d = s.d_model;
  const std::size_t rows = std::size_t(batch) * seq_len, width = rows * d;
  FrozenActivations<float> a;
  a.build(s, batch, seq_len, threads, {});
  std::vector<float> x(std::size_t(samples) * seq_len * d), next(x.size());
  for (int b = 0; b < samples / batch; ++b) {
    llama_embed_frozen(lay, params, tokens.data() + b * rows, a);
    std::memcpy(x.data() + b * width, a.x, width * sizeof(float));
  }
  // every batch through block l; hook at its sites; outputs kept in `out` when given
  auto pass = [&](int l, LinearHook<float>* hook, float* out) {
    for (int b = 0; b < samples / batch; ++b) {
      std::memcpy(a.x, x.data() + b * width, width * sizeof(float));
      llama_block_frozen(lay, params, l, a, hook);
      if (out) std::memcpy(out + b * width, a.x, width * sizeof(float));
    }
  };
  for (int l = 0; l < s.n_layers; ++l) {
    const double t0 = omp_get_wtime();
    for (const Site& site : block_sites(s, l)) {
      const int cols = site.input == LinearInput::o ? s.q_dim()
                       : site.input == LinearInput::down ? s.d_ff
                                                         : d;
      InputStats stats(cols);
      StatsHook hook(site.input, stats);
      pass(l, &hook, nullptr);
      c.compress(site, stats, params);
    }
    pass(l, nullptr, next.data());
    std::swap(x, next);
    if (progress) progress(fmt::format("block {}/{} compressed ({:.1f} s)", l + 1, s.n_layers, omp_get_wtime() - t0));
  }
}

}  // namespace kd::oneshot
