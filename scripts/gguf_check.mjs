// An independent check of kdtrain's GGUF export: npm's @huggingface/gguf parses the file
// (header, every metadata key, every tensor's name, shape, type and offset); this script then
// decodes each tensor's bytes itself and compares them with the same checkpoint's
// `kdtrain export --format hf` directory (safetensors, config.json, tokenizer.json), applying
// llama.cpp's conventions on its own: names, Q/K row permutation, rope_freqs, tokens.
//
//   node scripts/gguf_check.mjs MODULES_DIR FILE.gguf HF_DIR
// MODULES_DIR holds node_modules/@huggingface/gguf (scripts/test.sh installs it in build/npm).
// Exit 0 when every check holds; prints what it compared.
import fs from "node:fs";
import path from "node:path";

const [modules, ggufPath, hfDir] = process.argv.slice(2);
const { gguf } = await import(path.join(modules, "node_modules/@huggingface/gguf/dist/index.mjs"));

let failures = 0;
const fail = (msg) => { console.log(`FAIL: ${msg}`); failures++; };
const eq = (what, got, want) => {
  const g = typeof got === "bigint" ? Number(got) : got;
  if (JSON.stringify(g) !== JSON.stringify(want)) fail(`${what}: ${JSON.stringify(g)?.slice(0, 200)} != ${JSON.stringify(want)?.slice(0, 200)}`);
};

// --- the Hugging Face side
const config = JSON.parse(fs.readFileSync(path.join(hfDir, "config.json"), "utf8"));
const tokjson = JSON.parse(fs.readFileSync(path.join(hfDir, "tokenizer.json"), "utf8"));
const st = fs.readFileSync(path.join(hfDir, "model.safetensors"));
const stHeaderLen = Number(st.readBigUInt64LE(0));
const stHeader = JSON.parse(st.subarray(8, 8 + stHeaderLen).toString("utf8"));
const hfTensor = (name) => {
  const t = stHeader[name];
  if (!t || t.dtype !== "F32") throw new Error(`${name}: not an F32 tensor of the HF export`);
  const [b, e] = t.data_offsets;
  const bytes = st.subarray(8 + stHeaderLen + b, 8 + stHeaderLen + e);
  return { shape: t.shape, data: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)) };
};

// --- the GGUF side, parsed by @huggingface/gguf
const parsed = await gguf(ggufPath, { allowLocalFile: true });
const md = parsed.metadata;
const file = fs.readFileSync(ggufPath);
eq("version", md.version, 3);
eq("little-endian", parsed.littleEndian, true);

const hd = config.head_dim ?? config.hidden_size / config.num_attention_heads;
const expectKeys = {
  "general.architecture": "llama",
  "general.alignment": 32,
  "llama.vocab_size": config.vocab_size,
  "llama.embedding_length": config.hidden_size,
  "llama.block_count": config.num_hidden_layers,
  "llama.feed_forward_length": config.intermediate_size,
  "llama.attention.head_count": config.num_attention_heads,
  "llama.attention.head_count_kv": config.num_key_value_heads,
  "llama.rope.dimension_count": hd,
  "tokenizer.ggml.model": "gpt2",
  "tokenizer.ggml.eos_token_id": config.eos_token_id,
  "tokenizer.ggml.add_eos_token": false,
  "tokenizer.ggml.add_bos_token": config.bos_token_id !== undefined,
};
if (config.bos_token_id !== undefined) expectKeys["tokenizer.ggml.bos_token_id"] = config.bos_token_id;
if (config.pad_token_id !== undefined) expectKeys["tokenizer.ggml.padding_token_id"] = config.pad_token_id;
if (hd * config.num_attention_heads !== config.hidden_size) {
  expectKeys["llama.attention.key_length"] = hd;
  expectKeys["llama.attention.value_length"] = hd;
}
for (const [k, v] of Object.entries(expectKeys)) eq(k, md[k], v);
const close = (what, got, want, rel) => { if (!(Math.abs(got - want) <= rel * Math.abs(want))) fail(`${what}: ${got} != ${want}`); };
close("llama.rope.freq_base", md["llama.rope.freq_base"], config.rope_theta, 1e-7);
close("llama.attention.layer_norm_rms_epsilon", md["llama.attention.layer_norm_rms_epsilon"], config.rms_norm_eps, 1e-7);
const fileType = md["general.file_type"];
if (![0, 1, 7].includes(fileType)) fail(`general.file_type ${fileType}`);
const isLlama3Pattern = JSON.stringify(tokjson.pre_tokenizer).includes("\\\\p{N}{1,3}");
eq("tokenizer.ggml.pre", md["tokenizer.ggml.pre"], isLlama3Pattern ? "llama-bpe" : "gpt-2");

// tokens: the vocab and added tokens by id; types: control for added specials
const tokens = new Array(config.vocab_size).fill(null);
const types = new Array(config.vocab_size).fill(5);
for (const [t, id] of Object.entries(tokjson.model.vocab)) { tokens[id] = t; types[id] = 1; }
for (const a of tokjson.added_tokens) { tokens[a.id] = a.content; types[a.id] = 3; }
for (let i = 0; i < tokens.length; i++) if (tokens[i] === null) tokens[i] = `[PAD${i}]`;
eq("tokenizer.ggml.tokens", md["tokenizer.ggml.tokens"], tokens);
eq("tokenizer.ggml.token_type", md["tokenizer.ggml.token_type"], types);
eq("tokenizer.ggml.merges", md["tokenizer.ggml.merges"],
   tokjson.model.merges.map((m) => (Array.isArray(m) ? m.join(" ") : m)));
const checkedKeys = new Set([...Object.keys(expectKeys), "llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon",
  "general.file_type", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
  "general.name", "llama.context_length", "general.quantization_version", "version", "tensor_count", "kv_count"]);
for (const k of Object.keys(md)) if (!checkedKeys.has(k)) fail(`metadata key ${k} is not one this check knows`);
if (typeof md["general.name"] !== "string" || !(md["llama.context_length"] > 0)) fail("general.name / llama.context_length");
eq("general.quantization_version", md["general.quantization_version"], fileType === 7 ? 2 : undefined);

// --- tensors
const block = { input_layernorm: "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
  "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", post_attention_layernorm: "ffn_norm",
  "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down" };
const toGguf = (name) => {
  if (name === "model.embed_tokens.weight") return "token_embd.weight";
  if (name === "model.norm.weight") return "output_norm.weight";
  if (name === "lm_head.weight") return "output.weight";
  const m = name.match(/^model\.layers\.(\d+)\.(.+)\.weight$/);
  return m && block[m[2]] ? `blk.${m[1]}.${block[m[2]]}.weight` : null;
};
const permute = (w, rows, cols, heads) => {  // convert_hf_to_gguf.py's permute, written out
  const out = new Float32Array(w.length), d = rows / heads;
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < d / 2; i++)
      for (let j = 0; j < 2; j++)
        out.set(w.subarray((h * d + j * (d / 2) + i) * cols, (h * d + j * (d / 2) + i + 1) * cols), (h * d + 2 * i + j) * cols);
  return out;
};
const halfToFloat = (h) => {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
};
const decode = (info) => {
  const n = info.shape.reduce((a, b) => a * Number(b), 1);
  const at = Number(parsed.tensorDataOffset + info.offset);
  if (at % 32 !== 0) fail(`${info.name}: data at ${at}, not 32-aligned`);
  const out = new Float64Array(n), scales = [];
  if (info.dtype === 0) for (let i = 0; i < n; i++) out[i] = file.readFloatLE(at + 4 * i);
  else if (info.dtype === 1) for (let i = 0; i < n; i++) out[i] = halfToFloat(file.readUInt16LE(at + 2 * i));
  else if (info.dtype === 8) {
    for (let b = 0; b < n / 32; b++) {
      const d = halfToFloat(file.readUInt16LE(at + 34 * b));
      scales.push(d);
      for (let i = 0; i < 32; i++) out[32 * b + i] = d * file.readInt8(at + 34 * b + 2 + i);
    }
  } else fail(`${info.name}: GGML type ${info.dtype}`);
  return { out, scales };
};

const infos = new Map(parsed.tensorInfos.map((t) => [t.name, t]));
const expected = new Set();
let worst = { f32: 0, f16: 0, q8: 0 };
const quantMeta = stHeader.__metadata__?.["kdtrain.quantization"];
for (const name of Object.keys(stHeader)) {
  if (name === "__metadata__") continue;
  // a quantized export's parameters beside its dequantized weights: not model tensors
  if (quantMeta && /\.(weight_scale|weight_zero_point|input_scale|input_zero_point)$/.test(name)) continue;
  const gname = toGguf(name);
  if (!gname) { fail(`HF tensor ${name} has no GGUF name`); continue; }
  expected.add(gname);
  const info = infos.get(gname);
  if (!info) { fail(`${gname} is missing`); continue; }
  const { shape, data } = hfTensor(name);
  eq(`${gname} shape`, info.shape.map(Number), [...shape].reverse());
  const want2d = shape.length === 2;
  if (!want2d && info.dtype !== 0) fail(`${gname}: a 1-D tensor stored as type ${info.dtype}, not F32`);
  if (want2d && fileType === 0 && info.dtype !== 0) fail(`${gname}: type ${info.dtype} in an F32 file`);
  if (want2d && fileType === 1 && info.dtype !== 1) fail(`${gname}: type ${info.dtype} in an F16 file`);
  if (want2d && fileType === 7 && info.dtype !== 8 && !(info.dtype === 1 && shape[1] % 32 !== 0)) fail(`${gname}: type ${info.dtype} in a Q8_0 file`);
  let want = data;
  if (name.endsWith("q_proj.weight")) want = permute(data, shape[0], shape[1], config.num_attention_heads);
  if (name.endsWith("k_proj.weight")) want = permute(data, shape[0], shape[1], config.num_key_value_heads);
  const { out, scales } = decode(info);
  for (let i = 0; i < want.length; i++) {
    const x = want[i], err = Math.abs(out[i] - x);
    if (info.dtype === 0 && err !== 0) { fail(`${gname}[${i}]: ${out[i]} != ${x}`); break; }
    if (info.dtype === 1) {
      if (err > Math.abs(x) * 2 ** -11 + 2 ** -25) { fail(`${gname}[${i}]: F16 ${out[i]} vs ${x}`); break; }
      worst.f16 = Math.max(worst.f16, err / Math.max(Math.abs(x), 2 ** -14));
    }
    if (info.dtype === 8) {
      const d = scales[Math.floor(i / 32)];
      if (err > d * (0.5 + 127 * 2 ** -11) + 1e-12) { fail(`${gname}[${i}]: Q8_0 ${out[i]} vs ${x} (scale ${d})`); break; }
      worst.q8 = Math.max(worst.q8, err / (127 * d || 1));
    }
  }
}
if (config.rope_scaling) {
  expected.add("rope_freqs.weight");
  const info = infos.get("rope_freqs.weight");
  const rs = config.rope_scaling;
  if (!info) fail("rope_freqs.weight is missing");
  else {
    const { out } = decode(info);
    const lowWave = rs.original_max_position_embeddings / rs.low_freq_factor;
    const highWave = rs.original_max_position_embeddings / rs.high_freq_factor;
    for (let j = 0; j < hd / 2; j++) {  // convert_hf_to_gguf.py's LlamaModel.generate_extra_tensors
      const freq = 1 / config.rope_theta ** ((2 * j) / hd), wave = 2 * Math.PI / freq;
      let f = 1;
      if (wave > lowWave) f = rs.factor;
      else if (wave >= highWave) {
        const smooth = (rs.original_max_position_embeddings / wave - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
        f = 1 / ((1 - smooth) / rs.factor + smooth);
      }
      close(`rope_freqs[${j}]`, out[j], f, 1e-6);
    }
  }
}
for (const name of infos.keys()) if (!expected.has(name)) fail(`unexpected tensor ${name}`);
eq("tensor count", md.tensor_count, expected.size);

const keys = Object.keys(md).length;
if (failures === 0)
  console.log(`GGUF checked: ${keys} metadata entries, ${infos.size} tensors (file type ${fileType}); ` +
              `largest F16 error ${worst.f16.toExponential(2)} relative, Q8_0 ${worst.q8.toExponential(2)} of a block's max`);
process.exit(failures ? 1 : 0);
