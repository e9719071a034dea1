#include <gtest/gtest.h>

#include <map>

#include "io/load.h"
#include "nn/forward.h"
#include "nn/generate.h"
#include "nn/random_model.h"
#include "test_util.h"

namespace tq {

namespace {

std::vector<int32_t> some_tokens(int n, int vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = (int32_t)rng.below(vocab);
  return t;
}

}  // namespace

TEST(Forward, EverySiteReachedWithItsShape) {
  Config c = llama_config(32, 2, 4, 2, 48, 300, 64);
  Model m = random_model(c, 1);
  auto toks = some_tokens(2 * 5, c.vocab, 2);
  Input in{2, 5, toks.data()};
  test::ShapeHook h;
  Workspace ws;
  forward(m, in, ws, h);
  const int N = 10;
  for (int l = 0; l < 2; l++) {
    EXPECT_EQ(h.seen.at({(int)Site::qkv_in, l}), std::make_pair(N, 32));
    EXPECT_EQ(h.seen.at({(int)Site::q, l}), std::make_pair(N, 32));
    EXPECT_EQ(h.seen.at({(int)Site::k, l}), std::make_pair(N, 16));
    EXPECT_EQ(h.seen.at({(int)Site::v, l}), std::make_pair(N, 16));
    EXPECT_EQ(h.seen.at({(int)Site::probs, l}), std::make_pair(2 * 4 * 5, 5));
    EXPECT_EQ(h.seen.at({(int)Site::o_in, l}), std::make_pair(N, 32));
    EXPECT_EQ(h.seen.at({(int)Site::up_in, l}), std::make_pair(N, 32));
    EXPECT_EQ(h.seen.at({(int)Site::down_in, l}), std::make_pair(N, 48));
  }
  EXPECT_EQ(h.seen.at({(int)Site::head_in, -1}), std::make_pair(N, 32));
  EXPECT_EQ(h.seen.size(), 2u * 8 + 1);
  EXPECT_EQ(ws.logits.shape, (std::vector<int64_t>{N, 300}));
}

TEST(Forward, EncoderSwitchesReachEverySite) {
  // Post-norm, LayerNorm, GELU, learned positions, bidirectional, patches, CLS pooling.
  Config c;
  c.arch = "vit";
  c.dim = 16, c.n_layers = 2, c.n_heads = 2, c.n_kv_heads = 2, c.head_dim = 8, c.hidden = 24;
  c.n_out = 10, c.max_seq = 4;
  c.norm = NormKind::layer, c.act = ActKind::gelu, c.gated = false, c.post_norm = true, c.causal = false;
  c.pos = PosKind::learned, c.embed = EmbedKind::patches, c.patch_dim = 12, c.cls_token = true;
  c.pool = PoolKind::first;
  Model m = random_model(c, 3, 0.2f, true);
  std::vector<float> patches(3 * 4 * 12, 0.5f);
  Input in;
  in.B = 3, in.T = 4, in.patches = patches.data();
  test::ShapeHook h;
  Workspace ws;
  forward(m, in, ws, h);
  EXPECT_EQ(h.seen.at({(int)Site::qkv_in, 1}), std::make_pair(15, 16));
  EXPECT_EQ(h.seen.at({(int)Site::probs, 0}), std::make_pair(3 * 2 * 5, 5));
  EXPECT_EQ(h.seen.at({(int)Site::down_in, 1}), std::make_pair(15, 24));
  EXPECT_EQ(h.seen.at({(int)Site::head_in, -1}), std::make_pair(3, 16));
  EXPECT_EQ(ws.logits.shape, (std::vector<int64_t>{3, 10}));
  // Bidirectional: the first query attends to the last key.
  Workspace ws2;
  ws2.train = true;
  forward(m, in, ws2);
  EXPECT_GT(ws2.layers[0].p.data[4], 0.0f);
}

TEST(Forward, CachedDecodingMatchesFullSequence) {
  Config c = llama_config(32, 2, 4, 2, 48, 300, 64);
  Model m = random_model(c, 5, 0.1f);
  auto toks = some_tokens(12, c.vocab, 6);
  Workspace full;
  Input in{1, 12, toks.data()};
  forward(m, in, full);
  KVCache cache;
  cache.init(c, 1, 16);
  Workspace ws;
  Input p{1, 7, toks.data()};
  forward(m, p, ws, no_hooks(), &cache);
  cache.len += 7;
  EXPECT_LT(test::rel_err(ws.logits.row(6), full.logits.row(6), 300), 1e-5);
  for (int t = 7; t < 12; t++) {
    Input step{1, 1, toks.data() + t};
    forward(m, step, ws, no_hooks(), &cache);
    cache.len++;
    EXPECT_LT(test::rel_err(ws.logits.row(0), full.logits.row(t), 300), 1e-5) << t;
  }
}

TEST(Forward, BatchEqualsSeparateSequences) {
  Config c = llama_config(32, 2, 4, 2, 48, 300, 64);
  Model m = random_model(c, 8, 0.1f);
  auto toks = some_tokens(3 * 6, c.vocab, 9);
  Workspace wb;
  Input in{3, 6, toks.data()};
  forward(m, in, wb);
  for (int b = 0; b < 3; b++) {
    Workspace ws;
    Input one{1, 6, toks.data() + b * 6};
    forward(m, one, ws);
    EXPECT_LT(test::rel_err(ws.logits.ptr(), wb.logits.row(b * 6), 6 * 300), 1e-6);
  }
}

TEST(Stories260K, GreedySampleMatchesReadme) {
  TQ_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  for (const char* f : {"models/stories260K/stories260K.gguf", "models/stories260K/stories260K.bin"}) {
    Model m = load_model(test::shared(f));
    SampleOptions opt;
    opt.max_new = 40;
    auto out = generate(m, {m.tok.bos}, opt);
    std::string text;
    int32_t prev = m.tok.bos;
    for (int32_t t : out) text += decode_token(m.tok, prev, t), prev = t;
    EXPECT_EQ(text.substr(0, 100),
              "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day")
        << f;
  }
}

TEST(Stories260K, BinAndGgufGiveIdenticalLogits) {
  TQ_REQUIRE_SHARED("models/stories260K/stories260K.bin");
  Model a = load_model(test::shared("models/stories260K/stories260K.gguf"));
  Model b = load_model(test::shared("models/stories260K/stories260K.bin"));
  auto toks = encode(a.tok, "Once upon a time, there was a little girl named Lily.", true);
  Workspace wa, wb;
  Input in{1, (int)toks.size(), toks.data()};
  forward(a, in, wa);
  forward(b, in, wb);
  EXPECT_EQ(wa.logits.data, wb.logits.data);
}

}  // namespace tq
