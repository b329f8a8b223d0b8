#include "trainer/interop/gguf.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <vector>

#include <fmt/format.h>

#include "data/tokenizer/byte_unicode.h"
#include "data/tokenizer/regex_pretokenizer.h"
#include "kernels/kernels.h"
#include "trainer/interop/safetensors.h"
#include "trainer/model/param_table.h"
#include "base/errors.h"

namespace kd::interop {

namespace {

constexpr std::uint32_t kAlignment = 32;
constexpr int kQ8Block = 32;

// GGUF value types and GGML tensor types used here.
enum : std::uint32_t { kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9 };
enum : std::uint32_t { kTypeF32 = 0, kTypeF16 = 1, kTypeQ8_0 = 8 };

class Bytes {
 public:
  void raw(const void* p, std::size_t n) {
    const auto* b = static_cast<const char*>(p);
    buf_.insert(buf_.end(), b, b + n);
  }
  template <class T>
  void pod(T v) { raw(&v, sizeof v); }
  void str(std::string_view s) {
    pod<std::uint64_t>(s.size());
    raw(s.data(), s.size());
  }
  void pad() { buf_.resize((buf_.size() + kAlignment - 1) / kAlignment * kAlignment, 0); }
  std::size_t size() const { return buf_.size(); }
  const std::vector<char>& data() const { return buf_; }

 private:
  std::vector<char> buf_;
};

class Metadata {
 public:
  void u32(const std::string& k, std::uint32_t v) { key(k, kU32), b_.pod(v); }
  void f32(const std::string& k, float v) { key(k, kF32), b_.pod(v); }
  void flag(const std::string& k, bool v) { key(k, kBool), b_.pod<std::uint8_t>(v ? 1 : 0); }
  void str(const std::string& k, std::string_view v) { key(k, kString), b_.str(v); }
  void strings(const std::string& k, const std::vector<std::string>& v) {
    key(k, kArray), b_.pod(kString), b_.pod<std::uint64_t>(v.size());
    for (const auto& s : v) b_.str(s);
  }
  void i32s(const std::string& k, const std::vector<std::int32_t>& v) {
    key(k, kArray), b_.pod(kI32), b_.pod<std::uint64_t>(v.size());
    for (auto x : v) b_.pod(x);
  }
  std::size_t count() const { return count_; }
  const Bytes& bytes() const { return b_; }

 private:
  void key(const std::string& k, std::uint32_t type) {
    b_.str(k);
    b_.pod(type);
    ++count_;
  }
  Bytes b_;
  std::size_t count_ = 0;
};

// One tensor of the file. Its values are made when it is written (values()), so the writer
// holds one tensor's copy at a time, not the model's.
struct OutTensor {
  std::string name;
  std::vector<std::int64_t> shape;  // PyTorch order (rows, cols)
  std::uint32_t type = kTypeF32;
  std::function<std::vector<float>()> values;  // row-major, already permuted
  std::size_t numel() const {
    std::size_t n = 1;
    for (auto d : shape) n *= std::size_t(d);
    return n;
  }
  std::size_t bytes() const {
    return type == kTypeF32 ? 4 * numel() : type == kTypeF16 ? 2 * numel() : numel() / kQ8Block * 34;
  }
};

std::size_t aligned(std::size_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

// Hugging Face's rotate-half rows → GGML's adjacent pairs, per head (convert_hf_to_gguf's permute).
std::vector<float> permute_rope_rows(const float* w, int heads, int hd, int cols) {
  std::vector<float> out(std::size_t(heads) * hd * cols);
  for (int h = 0; h < heads; ++h)
    for (int i = 0; i < hd / 2; ++i)
      for (int j = 0; j < 2; ++j)
        std::memcpy(&out[(std::size_t(h) * hd + 2 * i + j) * cols], &w[(std::size_t(h) * hd + j * (hd / 2) + i) * cols],
                    sizeof(float) * std::size_t(cols));
  return out;
}

std::string gguf_name(const std::string& hf) {
  static const std::map<std::string, std::string> top = {{"model.embed_tokens.weight", "token_embd.weight"},
                                                         {"model.norm.weight", "output_norm.weight"},
                                                         {"lm_head.weight", "output.weight"}};
  static const std::map<std::string, std::string> block = {
      {"input_layernorm.weight", "attn_norm.weight"},     {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},       {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.o_proj.weight", "attn_output.weight"},  {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},        {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"}};
  if (const auto it = top.find(hf); it != top.end()) return it->second;
  const std::string prefix = "model.layers.";
  if (hf.rfind(prefix, 0) == 0) {
    const std::size_t dot = hf.find('.', prefix.size());
    const auto it = block.find(hf.substr(dot + 1));
    if (dot != std::string::npos && it != block.end())
      return fmt::format("blk.{}.{}", hf.substr(prefix.size(), dot - prefix.size()), it->second);
  }
  throw RuntimeFailure(fmt::format("gguf: no llama.cpp name for tensor '{}'", hf));
}

void append_data(Bytes& data, const OutTensor& t, const std::vector<float>& values, GgufSummary& s) {
  const std::size_t n = values.size();
  if (t.type == kTypeF32) {
    data.raw(values.data(), n * sizeof(float));
  } else if (t.type == kTypeF16) {
    for (float v : values) data.pod(float_to_half(v));
  } else {  // Q8_0, as llama.cpp's quantize_row_q8_0_ref
    for (std::size_t b = 0; b < n; b += kQ8Block) {
      float amax = 0;
      for (int i = 0; i < kQ8Block; ++i) amax = std::max(amax, std::fabs(values[b + i]));
      const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
      const std::uint16_t dh = float_to_half(d);
      data.pod(dh);
      const float dq = half_to_float(dh);
      for (int i = 0; i < kQ8Block; ++i) {
        const auto q = static_cast<std::int8_t>(std::lround(values[b + i] * id));
        data.pod(q);
        if (amax > 0) s.q8_max_rel_error = std::max(s.q8_max_rel_error, std::fabs(double(q) * dq - values[b + i]) / amax);
      }
    }
  }
}

std::string pretokenizer_name(const data::BpeTokenizer& tok) {
  if (tok.native() || tok.pretokenizer_pattern() == data::kGpt2Pattern) return "gpt-2";
  if (tok.pretokenizer_pattern() == data::kLlama3Pattern) return "llama-bpe";
  throw InputError(fmt::format("export --format gguf: the tokenizer's pre-tokenizer pattern is neither GPT-2's nor "
                               "Llama 3's; llama.cpp names its pre-tokenizers and would split text differently "
                               "(pattern: {})", tok.pretokenizer_pattern()));
}

}  // namespace

GgufType parse_gguf_type(const std::string& text, const std::string& key) {
  if (text == "f32") return GgufType::f32;
  if (text == "f16") return GgufType::f16;
  if (text == "q8_0") return GgufType::q8_0;
  throw InputError(fmt::format("{}: '{}' is not a GGUF tensor type kdtrain writes (f32, f16, q8_0)", key, text));
}

GgufSummary write_gguf(const std::string& path, const ModelSpec& spec, const ParamTable& table, const float* params,
                       const data::BpeTokenizer& tok, GgufType type, int context_length, const std::string& name) {
  KD_CHECK_INPUT(tok.vocab_size() <= spec.vocab, "export --format gguf: the tokenizer has {} tokens, the model {}",
                 tok.vocab_size(), spec.vocab);
  const int hd = spec.head_dim();
  GgufSummary s;

  Metadata md;
  md.str("general.architecture", "llama");
  md.str("general.name", name);
  md.u32("general.file_type", type == GgufType::f32 ? 0 : type == GgufType::f16 ? 1 : 7);
  if (type == GgufType::q8_0) md.u32("general.quantization_version", 2);
  md.u32("general.alignment", kAlignment);
  md.u32("llama.vocab_size", std::uint32_t(spec.vocab));
  md.u32("llama.context_length", std::uint32_t(context_length));
  md.u32("llama.embedding_length", std::uint32_t(spec.d_model));
  md.u32("llama.block_count", std::uint32_t(spec.n_layers));
  md.u32("llama.feed_forward_length", std::uint32_t(spec.d_ff));
  md.u32("llama.attention.head_count", std::uint32_t(spec.n_heads));
  md.u32("llama.attention.head_count_kv", std::uint32_t(spec.n_kv_heads));
  md.u32("llama.rope.dimension_count", std::uint32_t(hd));
  if (hd * spec.n_heads != spec.d_model) {
    md.u32("llama.attention.key_length", std::uint32_t(hd));
    md.u32("llama.attention.value_length", std::uint32_t(hd));
  }
  md.f32("llama.rope.freq_base", float(spec.rope_theta));
  md.f32("llama.attention.layer_norm_rms_epsilon", float(spec.norm_eps));

  // The tokenizer: every id of the model's vocabulary; ids past the tokenizer's are padding.
  std::vector<std::string> tokens(std::size_t(spec.vocab));
  std::vector<std::int32_t> types(std::size_t(spec.vocab), 1);  // 1 normal, 3 control, 5 unused
  for (std::int32_t id = 0; id < spec.vocab; ++id) {
    if (id >= tok.vocab_size()) {
      tokens[std::size_t(id)] = fmt::format("[PAD{}]", id);
      types[std::size_t(id)] = 5;
    } else if (tok.is_special(id)) {
      tokens[std::size_t(id)] = std::string(tok.token_bytes(id));
      types[std::size_t(id)] = 3;
    } else {
      tokens[std::size_t(id)] = data::bytes_to_token_text(tok.token_bytes(id));
    }
  }
  std::vector<std::string> merges;
  merges.reserve(tok.merges().size());
  for (const auto& m : tok.merges())
    merges.push_back(tokens[std::size_t(m.left)] + " " + tokens[std::size_t(m.right)]);
  md.str("tokenizer.ggml.model", "gpt2");
  md.str("tokenizer.ggml.pre", pretokenizer_name(tok));
  md.strings("tokenizer.ggml.tokens", tokens);
  md.i32s("tokenizer.ggml.token_type", types);
  md.strings("tokenizer.ggml.merges", merges);
  md.u32("tokenizer.ggml.eos_token_id", std::uint32_t(tok.eot_id()));
  if (tok.bos_id() >= 0) md.u32("tokenizer.ggml.bos_token_id", std::uint32_t(tok.bos_id()));
  if (tok.pad_id() >= 0) md.u32("tokenizer.ggml.padding_token_id", std::uint32_t(tok.pad_id()));
  md.flag("tokenizer.ggml.add_bos_token", tok.bos_id() >= 0);
  md.flag("tokenizer.ggml.add_eos_token", false);

  // Tensors, in the table's order; rope_freqs first when Llama 3 scaling is on.
  std::vector<OutTensor> out;
  if (spec.rope_scaling.factor > 0) {
    out.push_back({"rope_freqs.weight", {hd / 2}, kTypeF32, [&spec, hd] {
                     std::vector<float> f(std::size_t(hd / 2));
                     for (int j = 0; j < hd / 2; ++j)
                       f[std::size_t(j)] = float(kern::rope_inv_freq(j, hd, spec.rope_theta) /
                                                 kern::rope_inv_freq(j, hd, spec.rope_theta, spec.rope_scaling));
                     return f;
                   }});
  }
  for (const auto& t : table.tensors()) {
    if (t.has(kAuxiliary)) continue;
    const float* w = params + t.offset;
    const bool q = t.name.ends_with("q_proj.weight"), k = t.name.ends_with("k_proj.weight");
    const int heads = q ? spec.n_heads : spec.n_kv_heads, cols = int(t.shape.back());
    const std::size_t n = t.numel;
    OutTensor o{gguf_name(t.name), t.shape, kTypeF32, [=] {
                  return q || k ? permute_rope_rows(w, heads, hd, cols) : std::vector<float>(w, w + n);
                }};
    if (t.shape.size() == 2 && type != GgufType::f32) {
      o.type = type == GgufType::f16 ? kTypeF16 : kTypeQ8_0;
      if (o.type == kTypeQ8_0 && t.shape[1] % kQ8Block != 0) o.type = kTypeF16, ++s.f16_fallbacks;
      if (o.type == kTypeQ8_0) ++s.q8_tensors;
    }
    out.push_back(std::move(o));
  }

  Bytes head;
  head.raw("GGUF", 4);
  head.pod<std::uint32_t>(3);
  head.pod<std::uint64_t>(out.size());
  head.pod<std::uint64_t>(md.count());
  head.raw(md.bytes().data().data(), md.bytes().size());
  std::size_t offset = 0;
  for (const auto& t : out) {
    head.str(t.name);
    head.pod<std::uint32_t>(std::uint32_t(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) head.pod<std::uint64_t>(std::uint64_t(*it));
    head.pod(t.type);
    head.pod<std::uint64_t>(offset);
    offset += aligned(t.bytes());
  }
  head.pad();

  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw RuntimeFailure(fmt::format("{}: cannot create ({})", tmp, std::strerror(errno)));
  bool wrote = std::fwrite(head.data().data(), 1, head.size(), f) == head.size();
  for (const auto& t : out) {
    if (!wrote) break;
    Bytes data;
    append_data(data, t, t.values(), s);
    data.pad();
    wrote = std::fwrite(data.data().data(), 1, data.size(), f) == data.size();
  }
  if (std::fclose(f) != 0 || !wrote) {
    std::remove(tmp.c_str());
    throw RuntimeFailure(fmt::format("{}: write failed", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw RuntimeFailure(fmt::format("{}: cannot rename to {} ({})", tmp, path, std::strerror(errno)));
  s.tensors = out.size();
  s.metadata_keys = md.count();
  s.bytes = head.size() + offset;
  return s;
}

}  // namespace kd::interop
