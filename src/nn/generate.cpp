#include "nn/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/threads.h"

namespace tq {

int32_t sample_token(const float* logits, int V, float temp, float top_p, Rng& rng) {
  if (temp <= 0.0f) return (int32_t)(std::max_element(logits, logits + V) - logits);
  float mx = *std::max_element(logits, logits + V);
  std::vector<double> p(V);
  double sum = 0;
  for (int v = 0; v < V; v++) sum += p[v] = std::exp((logits[v] - mx) / temp);
  for (auto& x : p) x /= sum;
  std::vector<int32_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  int keep = V;
  if (top_p < 1.0f) {  // smallest set of most likely tokens whose mass reaches top_p
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
    double cum = 0;
    for (keep = 0; keep < V && cum < top_p; keep++) cum += p[order[keep]];
  }
  double mass = 0;
  for (int i = 0; i < keep; i++) mass += p[order[i]];
  double r = rng.uniform_f64() * mass, acc = 0;
  for (int i = 0; i < keep; i++) {
    acc += p[order[i]];
    if (r < acc) return order[i];
  }
  return order[keep - 1];
}

std::vector<int32_t> generate(const Model& m, const std::vector<int32_t>& prompt, const SampleOptions& opt,
                              const std::function<void(int32_t)>& on_token, Hooks& hooks) {
  TQ_CHECK_INPUT(m.cfg.is_lm(), "generation needs a language model");
  TQ_CHECK_INPUT(!prompt.empty(), "generation needs at least one prompt token (BOS)");
  int limit = std::min<int>(m.cfg.max_seq > 0 ? m.cfg.max_seq : 2048, (int)prompt.size() + opt.max_new);
  TQ_CHECK_INPUT((int)prompt.size() <= limit, "the prompt has {} tokens, more than the model's {} positions",
                 prompt.size(), limit);
  const double cache_bytes = 8.0 * m.cfg.n_layers * limit * m.cfg.kv_dim();  // keys and values, f32
  if (cache_bytes > (double)machine_memory_bytes())
    bad_input("{} positions of keys and values need {:.1f} GiB, more than this machine has; generate fewer tokens (-n)",
              limit, cache_bytes / (1 << 30));
  KVCache cache;
  cache.init(m.cfg, 1, limit);
  Workspace ws;
  Rng rng(opt.seed);
  std::vector<int32_t> out;
  Input in;
  in.tokens = prompt.data();
  in.T = (int)prompt.size();
  in.last_only = true;
  int32_t next;
  while (true) {
    forward(m, in, ws, hooks, &cache);
    cache.len += in.T;
    for (int v = 0; v < m.cfg.n_out; v++)
      if (!std::isfinite(ws.logits.ptr()[v]))
        bad_input("the model's output is not finite at position {}; its weights or plan are broken", cache.len - 1);
    next = sample_token(ws.logits.ptr(), m.cfg.n_out, opt.temp, opt.top_p, rng);
    if (opt.stop_at_eos && next == m.tok.eos) break;
    out.push_back(next);
    if (on_token) on_token(next);
    if ((int)out.size() >= opt.max_new || cache.len >= limit) break;
    in.tokens = &out.back();
    in.T = 1;
  }
  return out;
}

}  // namespace tq
