// llama2.c legacy checkpoints: a 7×int32 header, then f32 weights in a fixed
// order; and the llama2.c tokenizer file.
#include <cstring>

#include "core/error.h"
#include "core/mmap.h"
#include "io/load.h"

namespace tq {

Tokenizer load_llama2c_tokenizer(const std::string& path, int vocab_size) {
  MappedFile f(path);
  auto b = f.bytes();
  size_t pos = 0;
  auto get = [&](void* dst, size_t n, const char* what) {
    if (n > b.size() - pos) bad_input("{}: truncated while reading {} at offset {}", path, what, pos);
    std::memcpy(dst, b.data() + pos, n);
    pos += n;
  };
  Tokenizer tok;
  tok.kind = TokKind::spm;
  uint32_t max_len;
  get(&max_len, 4, "the header");
  for (int i = 0; i < vocab_size; i++) {
    float score;
    int32_t len;
    get(&score, 4, "a score");
    get(&len, 4, "a piece length");
    if (len < 0 || (uint32_t)len > max_len || (size_t)len > b.size() - pos)
      bad_input("{}: piece {} has length {} (max {})", path, i, len, max_len);
    tok.pieces.emplace_back((const char*)b.data() + pos, len);
    pos += len;
    tok.scores.push_back(score);
  }
  if (pos != b.size()) bad_input("{}: {} bytes left after {} pieces (wrong vocabulary size?)", path, b.size() - pos,
                                 vocab_size);
  // llama2.c conventions: 0 <unk>, 1 BOS, 2 EOS, byte pieces <0xNN>.
  tok.unk = 0;
  tok.bos = 1;
  tok.eos = 2;
  tok.types.assign(vocab_size, tok_normal);
  for (int i = 0; i < vocab_size; i++) {
    const std::string& p = tok.pieces[i];
    if (p.size() == 6 && p.rfind("<0x", 0) == 0 && p[5] == '>') tok.types[i] = tok_byte;
  }
  if (vocab_size > 2) tok.types[0] = tok_unknown, tok.types[1] = tok.types[2] = tok_control;
  tok.finalize();
  return tok;
}

Model load_llama2c_model(const std::string& path, const std::string& tokenizer_path) {
  MappedFile f(path);
  auto b = f.bytes();
  int32_t h[7];
  if (b.size() < sizeof(h)) bad_input("{}: too short for a llama2.c header", path);
  std::memcpy(h, b.data(), sizeof(h));
  Model m;
  Config& c = m.cfg;
  c.arch = "llama";
  c.dim = h[0];
  c.hidden = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.tied_head = h[5] > 0;
  c.vocab = h[5] > 0 ? h[5] : h[5] == INT32_MIN ? 0 : -h[5];  // INT32_MIN has no negation: refused below
  c.max_seq = h[6];
  c.n_out = c.vocab;
  TQ_CHECK_INPUT(c.dim > 0 && c.n_heads > 0 && c.dim % c.n_heads == 0 && c.max_seq > 0,
                 "{}: not a llama2.c checkpoint (header dim {}, heads {}, seq {})", path, c.dim, c.n_heads, c.max_seq);
  c.head_dim = c.dim / c.n_heads;
  c.norm = NormKind::rms;
  c.norm_eps = 1e-5f;
  c.pos = PosKind::rope;
  c.rope_layout = RopeLayout::pairs;
  c.act = ActKind::silu;
  try {
    validate_config(c, (int64_t)(b.size() / 4));
  } catch (const Error& e) {
    throw Error(e.exit_code, path + ": " + e.what());
  }
  allocate(m, false, false);
  size_t pos = sizeof(h);
  auto take = [&](float* dst, int64_t n, const char* what) {
    size_t bytes = (size_t)n * 4;
    if (bytes > b.size() - pos) bad_input("{}: truncated in {} (needs {} bytes at {})", path, what, bytes, pos);
    std::memcpy(dst, b.data() + pos, bytes);
    pos += bytes;
  };
  const int L = c.n_layers;
  take(m.tok_embd.ptr(), m.tok_embd.numel(), "tok_embeddings");
  // Stacked per-layer tensors: all layers of one kind, then the next kind.
  auto stacked = [&](auto get, const char* what) {
    for (int l = 0; l < L; l++) {
      Tensor& t = get(m.blocks[l]);
      take(t.ptr(), t.numel(), what);
    }
  };
  stacked([](Block& b) -> Tensor& { return b.attn_norm.g; }, "rms_att");
  stacked([](Block& b) -> Tensor& { return b.q.w; }, "wq");
  stacked([](Block& b) -> Tensor& { return b.k.w; }, "wk");
  stacked([](Block& b) -> Tensor& { return b.v.w; }, "wv");
  stacked([](Block& b) -> Tensor& { return b.o.w; }, "wo");
  stacked([](Block& b) -> Tensor& { return b.mlp_norm.g; }, "rms_ffn");
  stacked([](Block& b) -> Tensor& { return b.gate.w; }, "w1");
  stacked([](Block& b) -> Tensor& { return b.down.w; }, "w2");
  stacked([](Block& b) -> Tensor& { return b.up.w; }, "w3");
  take(m.final_norm.g.ptr(), c.dim, "rms_final");
  size_t rope_bytes = (size_t)c.max_seq * c.head_dim * 4;  // freq_cis_real and _imag: unused
  if (rope_bytes > b.size() - pos) bad_input("{}: truncated in the RoPE tables", path);
  pos += rope_bytes;
  if (!c.tied_head) take(m.head.w.ptr(), m.head.w.numel(), "wcls");
  if (pos != b.size()) bad_input("{}: {} unexpected bytes after the weights", path, b.size() - pos);
  m.tok = load_llama2c_tokenizer(tokenizer_path, c.vocab);
  validate(m);
  return m;
}

}  // namespace tq
