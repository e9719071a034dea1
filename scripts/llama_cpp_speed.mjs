// Prefill and decode speed of a GGUF file in llama.cpp itself (node-llama-cpp's
// prebuilt CPU build), measured the way `tquant bench` measures its end-to-end
// cases: T tokens of prefill in one batch, then N single-token decode steps, on
// a given thread count. A reference figure beside tquant's own; not needed to
// build or test.
//
//   mkdir /tmp/nlc && cd /tmp/nlc && npm i -E node-llama-cpp@3.21.1
//   NODE_PATH=/tmp/nlc/node_modules node scripts/llama_cpp_speed.mjs FILE.gguf [T=128] [N=32] [THREADS=2]
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const where = (process.env.NODE_PATH || "").split(path.delimiter).find((d) => fs.existsSync(path.join(d, "node-llama-cpp")));
if (!where) throw new Error("set NODE_PATH to the node_modules folder that holds node-llama-cpp");
const { getLlama } = await import(pathToFileURL(path.join(where, "node-llama-cpp", "dist", "index.js")).href);

const [file, T = "128", N = "32", threads = "2"] = process.argv.slice(2);
const llama = await getLlama({ gpu: false });
const model = await llama.loadModel({ modelPath: file, useMmap: true });
const ctx = await model.createContext({ contextSize: Number(T) + Number(N) + 8, batchSize: Number(T), threads: Number(threads),
  batching: { dispatchSchedule: "nextTick" } });
const seq = ctx.getSequence();
const V = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
const prompt = Array.from({ length: Number(T) }, (_, i) => 3 + ((i * 7919) % (V - 3)));
for (let rep = 0; rep < 2; rep++) {
  await seq.clearHistory();
  let t0 = process.hrtime.bigint();
  await seq.evaluateWithoutGeneratingNewTokens(prompt);
  const prefill = Number(process.hrtime.bigint() - t0) / 1e9;
  t0 = process.hrtime.bigint();
  for (let i = 0; i < Number(N); i++) await seq.evaluateWithoutGeneratingNewTokens([3 + ((i * 104729) % (V - 3))]);
  const decode = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`${path.basename(file)} run ${rep + 1}: prefill ${(Number(T) / prefill).toFixed(1)} tok/s (T ${T}), decode ${(Number(N) / decode).toFixed(2)} tok/s (${N} steps), ${threads} threads`);
}
await ctx.dispose();
await model.dispose();
