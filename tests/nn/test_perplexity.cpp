#include <gtest/gtest.h>

#include <fstream>

#include "nn/perplexity.h"
#include "io/load.h"
#include "nn/random_model.h"
#include "test_util.h"

namespace tq {

// The fp32 reference of ../shared/models/stories260K/README.md (NumPy, float64).
TEST(Stories260K, LinesPerplexityMatchesReference) {
  TQ_REQUIRE_SHARED("data/tinystories/tinystories_valid_head.txt");
  Model m = load_model(test::shared("models/stories260K/stories260K.gguf"));
  DataSpec d;
  d.path = test::shared("data/tinystories/tinystories_valid_head.txt");
  auto seqs = text_sequences(m.tok, d);
  EXPECT_EQ(seqs.size(), 4356u);
  LmEval r = eval_lm(m, seqs);
  EXPECT_EQ(r.tokens, 381522);
  EXPECT_NEAR(r.ppl(), 5.3885, 0.0005);
}

// llama.cpp's llama-perplexity figures (../shared/golden).
TEST(Stories260K, ChunksPerplexityMatchesLlamaCpp) {
  TQ_REQUIRE_SHARED("data/wikitext-2/wiki.test.raw");
  Model m = load_model(test::shared("models/stories260K/stories260K.gguf"));
  DataSpec d;
  d.protocol = "chunks";
  d.path = test::shared("data/tinystories/tinystories_valid_head.txt");
  d.ctx = 256;
  d.limit = 200;
  LmEval r = eval_lm(m, text_sequences(m.tok, d));
  EXPECT_EQ(r.tokens, 200 * 127);
  EXPECT_NEAR(r.ppl(), 3.9174, 3.9174e-3);
  d.path = test::shared("data/wikitext-2/wiki.test.raw");
  d.ctx = 128;
  r = eval_lm(m, text_sequences(m.tok, d));
  EXPECT_NEAR(r.ppl(), 119.6796, 119.6796e-3);
}

TEST(Eval, SelfComparisonHasZeroDivergenceAndIsDeterministic) {
  Model m = random_model(llama_config(32, 2, 4, 2, 48, 300, 64), 1, 0.2f);
  test::TempDir dir;
  std::string text;
  for (int i = 0; i < 40; i++) text += "line number " + std::to_string(i * 7919 % 1000) + " of the test text\n";
  std::ofstream(dir.file("t.txt")) << text;
  DataSpec d;
  d.path = dir.file("t.txt");
  auto seqs = text_sequences(m.tok, d);
  EXPECT_EQ(seqs.size(), 40u);
  LmEval a = eval_lm(m, seqs, no_hooks(), &m);
  LmEval b = eval_lm(m, seqs);
  EXPECT_EQ(a.kld_mean(), 0.0);
  EXPECT_EQ(a.top1_agree(), 1.0);
  EXPECT_EQ(a.nll_sum, b.nll_sum);  // same bits, whatever the schedule
  EXPECT_GT(a.ppl(), 1.0);
}

}  // namespace tq
