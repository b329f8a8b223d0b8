// Runs a GGUF file in llama.cpp (npm's node-llama-cpp, its prebuilt CPU build) and prints,
// as JSON, the prompt's token ids and the greedy continuation: the ids and their bytes (hex,
// decoded through the file's own token list with GPT-2's byte table, since llama.cpp's
// detokenizer replaces bytes that are not UTF-8). The prompt is framed as kdtrain's generate
// frames it: bos first when the file says so.
//   node scripts/llama_cpp_greedy.mjs MODULES_DIR FILE.gguf PROMPT N
// PROMPT "@path" reads the prompt from a file.
import fs from "node:fs";
import path from "node:path";

const [modules, file, promptArg, n] = process.argv.slice(2);
const prompt = promptArg.startsWith("@") ? fs.readFileSync(promptArg.slice(1), "utf8") : promptArg;
const { getLlama } = await import(path.join(modules, "node_modules/node-llama-cpp/dist/index.js"));
const { gguf } = await import(path.join(modules, "node_modules/@huggingface/gguf/dist/index.mjs"));
const tokenList = (await gguf(file, { allowLocalFile: true })).metadata["tokenizer.ggml.tokens"];
const charToByte = new Map();
{
  const printable = (b) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let shifted = 0;
  for (let b = 0; b < 256; b++) charToByte.set(printable(b) ? b : 256 + shifted++, b);
}
const hexOf = (ids) => Buffer.from(ids.flatMap((id) => [...tokenList[id]].map((c) => charToByte.get(c.codePointAt(0))))).toString("hex");
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath: file });
let ids = Array.from(model.tokenize(prompt, false));
const bos = model.tokens.bos;
if (model.tokens.shouldPrependBosToken && bos !== null) ids = [bos, ...ids];
const ctx = await model.createContext({ contextSize: 64, threads: 1 });
const seq = ctx.getSequence();
const out = [];
for await (const t of seq.evaluate(ids, { temperature: 0 })) {
  out.push(t);
  if (out.length >= Number(n) || t === model.tokens.eos) break;
}
console.log(JSON.stringify({ prompt_ids: ids, greedy_ids: out, greedy_hex: hexOf(out) }));
await ctx.dispose();
await model.dispose();
