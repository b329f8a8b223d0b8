// One-shot compression's calibration pass (GPTQ's "sequential" mode, used by every method
// here): the calibration tokens run through the model one decoder block at a time. Each
// block's inputs are the outputs of the blocks before it as already compressed; within the
// block the linears are compressed in true-sequential order — q/k/v, then o, then gate/up,
// then down — each site's input statistics gathered from the block with the sites before
// it already compressed; then the block's outputs are recomputed from the compressed block
// and become the next block's inputs. Memory: the calibration set's hidden states twice
// (samples · seq_len · d_model floats each) and one site's statistics (a cols² float64
// Hessian: d_ff² for down_proj).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/shards/token_shard.h"
#include "trainer/model/linear_hook.h"
#include "trainer/model/llama.h"
#include "trainer/model/param_table.h"
#include "trainer/oneshot/input_stats.h"

namespace kd::oneshot {

// The linears that read one input site of a block, and what produces that input.
struct Site {
  int layer = 0;
  LinearInput input = LinearInput::qkv;
  std::vector<std::string> modules;  // e.g. model.layers.0.self_attn.q_proj (weights: module + ".weight")
  std::string norm;      // the RMSNorm weight in front (qkv, gate_up); "" for o and down
  std::string producer;  // o: v_proj (whose rows feed o's input when heads are not grouped); down: up_proj
};
// q/k/v, o, gate/up, down of block `layer`, in that order.
std::vector<Site> block_sites(const ModelSpec& spec, int layer);

// What a method does with a site once its inputs are known: compresses the site's
// linears in `params` (and may fold scales into the norm or producer in front).
class SiteCompressor {
 public:
  virtual ~SiteCompressor() = default;
  virtual void compress(const Site& site, const InputStats& stats, float* params) = 0;
};

// `samples` windows of `seq_len` tokens from `shard`, drawn with `seed` as training draws
// them (data/token_dataset.h). InputError naming `key` and the shard when it is shorter
// than one window.
std::vector<std::int32_t> calibration_tokens(std::shared_ptr<const data::TokenShard> shard, int vocab, int samples,
                                             int seq_len, std::uint64_t seed, const std::string& key);

// Runs the calibration tokens (samples × seq_len) through the model at `params` block by
// block, calling `c` at every site in order; params end compressed. `progress` (nullable)
// gets a line per block.
void compress_block_sequential(const LlamaLayout& lay, float* params, const std::vector<std::int32_t>& tokens,
                               int samples, int seq_len, int threads, SiteCompressor& c,
                               const std::function<void(const std::string&)>& progress);

}  // namespace kd::oneshot
