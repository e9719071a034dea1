// Text generation with a KV cache: greedy, temperature and top-p sampling, seeded.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "core/rng.h"
#include "nn/forward.h"

namespace tq {

struct SampleOptions {
  float temp = 0.0f;   // 0: greedy
  float top_p = 1.0f;  // nucleus sampling mass
  uint64_t seed = 0;
  int max_new = 64;
  bool stop_at_eos = true;
};

// Picks the next token from one row of logits.
int32_t sample_token(const float* logits, int V, float temp, float top_p, Rng& rng);

// Generates up to max_new tokens after the prompt; on_token sees each new token as it comes.
std::vector<int32_t> generate(const Model& m, const std::vector<int32_t>& prompt, const SampleOptions& opt,
                              const std::function<void(int32_t)>& on_token = {}, Hooks& hooks = no_hooks());

}  // namespace tq
