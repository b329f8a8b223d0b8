// GGUF (version 3), the file llama.cpp loads: a student as a "llama" architecture model with
// its byte-level BPE tokenizer, in llama.cpp's conventions (those of its
// convert_hf_to_gguf.py):
//  * tensor names token_embd, blk.N.attn_{norm,q,k,v,output}, blk.N.ffn_{norm,gate,up,down},
//    output_norm, output (absent when the head is tied); dimensions innermost first;
//  * the rows of attn_q and attn_k permuted from Hugging Face's rotate-half RoPE layout to
//    GGML's adjacent-pair layout (per head: rows 0, d/2, 1, d/2 + 1, …);
//  * Llama 3's RoPE scaling as the per-frequency divisors in rope_freqs.weight;
//  * 1-D tensors (norms, rope_freqs) in F32; matrices in F32, F16 or Q8_0 (blocks of 32:
//    an F16 scale amax/127 and 32 int8 codes); a matrix whose rows are not a multiple of 32
//    falls back from Q8_0 to F16, as llama.cpp's own quantizer does;
//  * metadata: general.*, llama.* hyperparameters, tokenizer.ggml.* (model "gpt2",
//    tokens spelt as tokenizer.json spells them, token types, merges, bos/eos/pad ids, and
//    the pre-tokenizer's name: "llama-bpe" for Llama 3's pattern, "gpt-2" otherwise).
// Little-endian, alignment 32. Written to path.tmp and renamed.
#pragma once

#include <cstdint>
#include <string>

#include "data/tokenizer/bpe_tokenizer.h"
#include "trainer/model/model_spec.h"
#include "trainer/model/param_table.h"

namespace kd::interop {

enum class GgufType { f32, f16, q8_0 };
// "f32", "f16", "q8_0"; InputError naming `key` otherwise.
GgufType parse_gguf_type(const std::string& text, const std::string& key);

struct GgufSummary {
  std::size_t tensors = 0, metadata_keys = 0, bytes = 0;
  std::size_t q8_tensors = 0, f16_fallbacks = 0;  // matrices stored Q8_0; Q8_0 requests stored F16
  double q8_max_rel_error = 0;  // largest |w - Q8_0(w)| / max|row block| over all blocks
};

// Writes `params` (laid out by `table`, a LlamaLayout of `spec`; auxiliary tensors never
// written) with `tokenizer` as a GGUF file. context_length: llama.context_length.
GgufSummary write_gguf(const std::string& path, const ModelSpec& spec, const ParamTable& table, const float* params,
                       const data::BpeTokenizer& tokenizer, GgufType type, int context_length,
                       const std::string& name);

}  // namespace kd::interop
