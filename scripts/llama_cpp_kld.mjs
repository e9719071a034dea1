// Evaluates GGUF files in llama.cpp itself (through node-llama-cpp's prebuilt llama.cpp), the way
// ../shared/golden/llama.cpp-quants/README.md evaluates them with tquant: the first 90 % of the
// lines of the TinyStories head tokenized once (BOS first), windows of 256 tokens with the first
// replaced by BOS, the second half of each scored, 30 windows; PPL of each file and its KL
// divergence from the reference file's next-token distributions. A check that llama.cpp loads
// tquant's files and computes with them what tquant computes; not needed to build or test.
//
//   mkdir /tmp/nlc && cd /tmp/nlc && npm i -E node-llama-cpp@3.21.1
//   NODE_PATH=/tmp/nlc/node_modules node scripts/llama_cpp_kld.mjs REF.gguf FILE.gguf...
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

// node-llama-cpp is an ES module: import it from NODE_PATH (where it was installed).
const where = (process.env.NODE_PATH || "").split(path.delimiter).find((d) => fs.existsSync(path.join(d, "node-llama-cpp")));
if (!where) throw new Error("set NODE_PATH to the node_modules folder that holds node-llama-cpp");
const { getLlama } = await import(pathToFileURL(path.join(where, "node-llama-cpp", "dist", "index.js")).href);

const [ref, ...files] = process.argv.slice(2);
const text = "../shared/data/tinystories/tinystories_valid_head.txt";
const lines = fs.readFileSync(new URL("../" + text, import.meta.url), "utf8").split("\n");
if (lines.at(-1) === "") lines.pop();
const evalText = lines.slice(0, Math.floor(0.9 * lines.length)).join("\n");
const CTX = 256, WINDOWS = 30;

const llama = await getLlama({ gpu: false });

// Per window, the scored positions' next-token distributions (Float64Array over the vocabulary).
async function distributions(path) {
  const model = await llama.loadModel({ modelPath: path });
  const context = await model.createContext({ contextSize: CTX, batchSize: CTX, threads: 2 });
  const tokens = [model.tokens.bos, ...model.tokenize(evalText)];
  const V = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
  const out = [];
  const seq = context.getSequence();
  for (let w = 0; w < WINDOWS; w++) {
    const win = tokens.slice(w * CTX, (w + 1) * CTX);
    win[0] = model.tokens.bos;
    await seq.clearHistory();
    const input = win.map((t, i) =>
      i >= CTX / 2 && i < CTX - 1 ? [t, { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } }] : t);
    const res = await seq.controlledEvaluate(input);
    const dists = [];
    for (let i = CTX / 2; i < CTX - 1; i++) {
      const p = new Float64Array(V);
      for (const [tok, prob] of res[i].next.probabilities) p[tok] = prob;
      dists.push({ p, next: win[i + 1] });
    }
    out.push(dists);
  }
  await context.dispose();
  await model.dispose();
  return out;
}

const base = await distributions(ref);
for (const f of [ref, ...files]) {
  const d = f === ref ? base : await distributions(f);
  let nll = 0, kld = 0, n = 0, same = 0;
  for (let w = 0; w < d.length; w++)
    for (let i = 0; i < d[w].length; i++) {
      const p = base[w][i].p, q = d[w][i].p;
      nll -= Math.log(Math.max(q[d[w][i].next], 1e-30));
      let k = 0, ap = 0, aq = 0;
      for (let v = 0; v < p.length; v++) {
        if (p[v] > 0) k += p[v] * (Math.log(p[v]) - Math.log(Math.max(q[v], 1e-30)));
        if (p[v] > p[ap]) ap = v;
        if (q[v] > q[aq]) aq = v;
      }
      kld += k;
      same += ap === aq;
      n++;
    }
  console.log(`${f}: PPL ${Math.exp(nll / n).toFixed(4)}  KLD ${(kld / n).toFixed(5)}  top-1 ${(100 * same / n).toFixed(2)} %  (${n} tokens)`);
}
