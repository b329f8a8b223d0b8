// A trained model read back from a kdtrain checkpoint: its config, tokenizer (if any),
// tensor table, layout and weights. Used by distill (the teacher), eval and generate.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "data/tokenizer/bpe_tokenizer.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/config/config.h"
#include "trainer/model/llama.h"
#include "trainer/prune/mask.h"
#include "trainer/quant/quantized_model.h"
#include "trainer/setup/provenance.h"
#include "trainer/util/aligned_buffer.h"

namespace kd {

struct LoadedModel {
  std::string path;
  Config config;  // the run's effective config; config.model is the model's shape
  std::optional<data::BpeTokenizer> tokenizer;
  Provenance provenance;
  std::int64_t step = 0;
  ParamTable table;
  std::unique_ptr<LlamaLayout> layout;
  AlignedBuffer<float> params;  // a quantized model's weights dequantized here
  // A checkpoint of kind "quantized" (kdtrain ptq): its codes and scales.
  std::unique_ptr<quant::QuantizedModel> quantized;
};

// InputError naming the checkpoint (and the tensor) on anything missing or malformed.
// weights = false: config, tokenizer, provenance and layout only (params stays empty).
std::unique_ptr<LoadedModel> load_model(const std::string& checkpoint_path, bool weights = true);

// A teacher may have a different vocabulary size only when the difference is padding:
// rows beyond the tokenizer's vocabulary, which no token uses (the divergence then runs
// over the shared prefix). Otherwise an InputError naming both sizes.
void check_teacher_vocab(int model_vocab, int teacher_vocab, std::int64_t tokenizer_vocab,
                         const std::string& teacher_path);

// The contents of a checkpoint made from `source` (ptq, export): its tokenizer, metrics and
// provenance carried over, the given kind, config and step; tensors to be filled in.
ckpt::CheckpointContents derived_checkpoint(const ckpt::CheckpointReader& source, std::string kind,
                                            const Config& config, std::int64_t step);

// The pruning mask of a loaded model: its checkpoint's group "masks", or (a checkpoint
// without one) the exact zeros of its weights. InputError naming the checkpoint.
prune::Mask load_mask(const ckpt::CheckpointReader& r, const LoadedModel& model);

// Reads the "model" group tensors of `table` (by name) from a checkpoint into params.
void read_tensors(const ckpt::CheckpointReader& r, const std::string& group, const ParamTable& table,
                  float* dst, std::uint32_t skip_flags = 0);

}  // namespace kd
