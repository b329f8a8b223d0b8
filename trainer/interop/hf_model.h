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

#include <string>

#include "trainer/model/model_spec.h"
#include "trainer/model/param_table.h"
#include "trainer/util/aligned_buffer.h"

namespace kd::interop {

// The model's shape from config.json's text (`where` names the file in messages).
ModelSpec parse_hf_config(const std::string& json_text, const std::string& where);
// config.json for a model of this shape (LlamaForCausalLM).
std::string hf_config_json(const ModelSpec& spec);

struct HfModel {
  ModelSpec spec;
  ParamTable table;
  AlignedBuffer<float> params;  // laid out by table (LlamaLayout)
  std::string tokenizer_json;   // the directory's tokenizer.json, "" when absent
};
// Reads a model directory. InputError naming the file, tensor or key.
HfModel read_hf_model(const std::string& dir);
// Writes config.json and model.safetensors (float32) into dir (made if absent) for the
// model tensors of `table` (auxiliary tensors never). tokenizer_json: written when not empty.
void write_hf_model(const std::string& dir, const ModelSpec& spec, const ParamTable& table, const float* params,
                    const std::string& tokenizer_json);

}  // namespace kd::interop
