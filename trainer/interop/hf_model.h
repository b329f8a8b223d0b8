// Hugging Face Llama-family model directories: config.json + model.safetensors (or shards
// listed by model.safetensors.index.json). kdtrain's tensor names are Hugging Face's, so a
// model maps one to one onto a LlamaLayout.
//
// config.json is read against an allow-list: the keys that set the shape and math kdtrain
// implements, and keys that do not change the math (token ids, dtype, versions). Anything
// else, and any value kdtrain does not implement (rope_scaling other than Llama 3's,
// attention_bias, mlp_bias, sliding_window, an activation other than silu), is refused with an
// InputError naming the key: a model is never imported with wrong logits.
#pragma once

#include <optional>
#include <string>

#include "data/tokenizer/bpe_tokenizer.h"
#include "trainer/interop/quant_tensors.h"

#include "trainer/model/model_spec.h"
#include "trainer/model/param_table.h"
#include "trainer/util/aligned_buffer.h"

namespace kd::interop {

// The model's shape from config.json's text (`where` names the file in messages).
ModelSpec parse_hf_config(const std::string& json_text, const std::string& where);
// config.json for a model of this shape (LlamaForCausalLM); with the tokenizer's bos, eos
// and pad ids when there is one.
std::string hf_config_json(const ModelSpec& spec, const data::BpeTokenizer* tokenizer = nullptr);

// The directory's tokenizer.json, nullopt when it has none. Its end-of-text token is
// config.json's eos_token_id (the first, when a list), else tokenizer_config.json's
// eos_token. InputError naming the file and field (see data/tokenizer/hf_tokenizer_file.cpp).
std::optional<data::BpeTokenizer> read_hf_tokenizer(const std::string& dir);

struct HfModel {
  ModelSpec spec;
  ParamTable table;
  AlignedBuffer<float> params;  // laid out by table (LlamaLayout)
  std::optional<data::BpeTokenizer> tokenizer;  // read_hf_tokenizer
  std::size_t skipped_quant_tensors = 0;         // a kdtrain quantized export's parameters, read past
};
// Reads a model directory. InputError naming the file, tensor or key.
HfModel read_hf_model(const std::string& dir);
// Writes config.json and model.safetensors (float32) into dir (made if absent) for the
// model tensors of `table` (auxiliary tensors never); with a tokenizer, also tokenizer.json
// and tokenizer_config.json (Hugging Face's formats); with `quant`, a quantized model's
// parameters as extra tensors and metadata (quant_tensors.h).
void write_hf_model(const std::string& dir, const ModelSpec& spec, const ParamTable& table, const float* params,
                    const data::BpeTokenizer* tokenizer, const QuantTensors* quant = nullptr);

}  // namespace kd::interop
