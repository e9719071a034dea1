// Deterministic random models for tests, benchmarks and fixtures.
#pragma once
#include <cstdint>

#include "nn/model.h"

namespace tq {

// A LLaMA-shaped config (RMSNorm, RoPE, SwiGLU, GQA).
Config llama_config(int dim, int n_layers, int n_heads, int n_kv_heads, int hidden, int vocab, int max_seq);

// Every weight drawn from N(0, std²) (norm gains 1 + N(0, 0.1²)), same bits for the same seed.
// Token models get a byte-level SentencePiece vocabulary (<unk>, <s>, </s>, the 256
// byte pieces, then filler pieces) so that any text can be encoded.
Model random_model(const Config& c, uint64_t seed, float std = 0.02f, bool biases = false);

Tokenizer byte_tokenizer(int vocab);

}  // namespace tq
