// A `--tokenizer PATH` argument, as prepare, tokenize and detokenize take it: a kdtrain
// checkpoint's tokenizer (an imported teacher's), a Hugging Face model directory's
// tokenizer.json, or a tokenizer file (kdtrain's format or a Hugging Face tokenizer.json).
#pragma once

#include <string>

#include "data/tokenizer/bpe_tokenizer.h"

namespace kd::cli {

// InputError naming the path when it holds none of those.
data::BpeTokenizer tokenizer_from_path(const std::string& path);

}  // namespace kd::cli
