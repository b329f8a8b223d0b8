// Times llama.cpp (npm's node-llama-cpp, its prebuilt CPU build) on a GGUF file: the prompt's
// prefill (until the first sampled token) and greedy decoding of N - 1 more tokens, one
// sequence, the given threads, context and KV cache type (F32 or F16, llama.cpp's default).
// Wall-clock times, with node-llama-cpp's batches dispatched on the next tick (its default
// waits a whole event-loop cycle per token). llama.cpp's own count of the decode time
// (llama_perf_context_print's "eval time") comes beside it, so JavaScript's share of the
// timed decode is measured: js_share = 1 - native / wall. Prints JSON: prompt_tokens,
// prefill_s, decode_tokens, decode_s, native_decode_s, js_share.
//   node scripts/llama_cpp_bench.mjs MODULES_DIR FILE.gguf PROMPT_FILE N CONTEXT THREADS KV_TYPE
import fs from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";

const [modules, file, promptFile, n, context, threads, kvType] = process.argv.slice(2);
const prompt = fs.readFileSync(promptFile, "utf8");
const { getLlama } = await import(path.join(modules, "node_modules/node-llama-cpp/dist/index.js"));
let perf = "";
const llama = await getLlama({ gpu: false, build: "never", logLevel: "info",
                               logger: (level, msg) => { if (msg.includes("llama_perf_context_print")) perf += msg; } });
const model = await llama.loadModel({ modelPath: file });
let ids = Array.from(model.tokenize(prompt, false));
const bos = model.tokens.bos;
if (model.tokens.shouldPrependBosToken && bos !== null) ids = [bos, ...ids];
const ctx = await model.createContext({ contextSize: Number(context), threads: Number(threads), batchSize: 512,
                                        batching: { dispatchSchedule: "nextTick" }, performanceTracking: true,
                                        experimentalKvCacheKeyType: kvType, experimentalKvCacheValueType: kvType });
const seq = ctx.getSequence();
let got = 0, tFirst = 0;
const t0 = performance.now();
for await (const t of seq.evaluate(ids, { temperature: 0 })) {
  if (++got === 1) tFirst = performance.now();
  if (got >= Number(n)) break;
}
const t1 = performance.now();
await ctx.printTimings();
// "eval time = X ms / M runs": the single-token decodes (the prompt is "prompt eval")
const m = perf.match(/ eval time =\s*([0-9.]+) ms \/\s*([0-9]+) runs/);
const native = m ? Number(m[1]) / 1e3 * (got - 1) / Number(m[2]) : NaN;
const decode = (t1 - tFirst) / 1e3;
console.log(JSON.stringify({ prompt_tokens: ids.length, prefill_s: (tFirst - t0) / 1e3, decode_tokens: got - 1,
                             decode_s: decode, native_decode_s: native, js_share: 1 - native / decode }));
await ctx.dispose();
await model.dispose();
