#include "nn/random_model.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/rng.h"

namespace tq {

Config llama_config(int dim, int n_layers, int n_heads, int n_kv_heads, int hidden, int vocab, int max_seq) {
  Config c;
  c.arch = "llama";
  c.dim = dim;
  c.n_layers = n_layers;
  c.n_heads = n_heads;
  c.n_kv_heads = n_kv_heads;
  c.head_dim = dim / n_heads;
  c.hidden = hidden;
  c.vocab = vocab;
  c.n_out = vocab;
  c.max_seq = max_seq;
  return c;
}

Tokenizer byte_tokenizer(int vocab) {
  TQ_CHECK_INPUT(vocab >= 259, "a byte tokenizer needs at least 259 pieces, got {}", vocab);
  Tokenizer t;
  t.kind = TokKind::spm;
  t.pieces = {"<unk>", "<s>", "</s>"};
  t.types = {tok_unknown, tok_control, tok_control};
  for (int b = 0; b < 256; b++) {
    t.pieces.push_back(fmt::format("<0x{:02X}>", b));
    t.types.push_back(tok_byte);
  }
  while ((int)t.pieces.size() < vocab) {
    t.pieces.push_back(fmt::format("<extra_{}>", t.pieces.size()));
    t.types.push_back(tok_unused);
  }
  t.scores.assign(vocab, 0.0f);
  t.unk = 0;
  t.bos = 1;
  t.eos = 2;
  t.finalize();
  return t;
}

Model random_model(const Config& c, uint64_t seed, float std, bool biases) {
  Model m;
  m.cfg = c;
  validate_config(c, INT64_MAX);
  allocate(m, biases, false);
  Rng rng(seed);
  for (auto& nt : named_tensors(m)) {
    bool gain = nt.name.find("norm.weight") != std::string::npos;
    for (float& v : nt.t->data) v = gain ? 1.0f + 0.1f * (float)rng.normal() : std * (float)rng.normal();
  }
  if (c.embed == EmbedKind::tokens && c.vocab >= 259) m.tok = byte_tokenizer(c.vocab);
  validate(m);
  return m;
}

}  // namespace tq
