// Random models of any LLaMA shape written straight to disk, one tensor at a
// time: models of real sizes (7B, 13B, 70B shapes) to measure memory and speed
// on, without a checkpoint to download and without holding the model in memory.
// Weights are N(0, 1/fan_in) (so a signal passes every block), norm gains
// 1 + N(0, 0.1²), in F32, F16 or BF16; a byte-level tokenizer. The same seed
// gives the same bits for any thread count: every run of 64 rows has its own
// generator, seeded from (seed, tensor, run).
#pragma once
#include <string>

#include "nn/model.h"

namespace tq {

struct GenerateOptions {
  Config cfg;                 // a LLaMA-family config (llama_config); arch "qwen2" adds q/k/v biases
                              // (rope_layout halves), sliding_window > 0 makes a Mistral
  uint32_t type = ggml_f16;   // type of the matrices: ggml_f32, ggml_f16 or ggml_bf16 (norms stay F32)
  uint64_t seed = 1;
  // "gguf": one file; "hf": a Hugging Face directory (config.json, model.safetensors or shards
  // of at most shard_bytes with model.safetensors.index.json, tokenizer.json).
  std::string format = "gguf";
  int64_t shard_bytes = int64_t(4) << 30;
};

void write_random_model(const std::string& path, const GenerateOptions& opt);

}  // namespace tq
