// The activation-weighted scale search for the ggml block types: never worse than
// the reference encoder on the weighted error (legacy types, by construction; K
// types over many blocks), better where the weights are uneven, and what it
// writes decodes to exactly the values it scored.
#include <gtest/gtest.h>

#include <cmath>

#include "core/rng.h"
#include "io/ggml_types.h"
#include "quant/ggml_fit.h"

namespace tq {

namespace {

const uint32_t kTypes[] = {ggml_q4_0, ggml_q4_1, ggml_q5_0, ggml_q5_1, ggml_q8_0,
                           ggml_q2_k, ggml_q3_k, ggml_q4_k, ggml_q5_k, ggml_q6_k};

// Heavy-tailed weights like a trained model's, and importances spread over two decades.
void sample(Rng& r, int n, std::vector<float>& x, std::vector<float>& w) {
  x.resize(n), w.resize(n);
  for (int i = 0; i < n; i++) {
    float g = (float)r.normal();
    x[i] = 0.05f * g * (1 + 0.5f * g * g) + 0.01f;
    w[i] = std::pow(10.0f, 2 * r.uniform());
  }
}

double weighted_error(const std::vector<float>& x, const std::vector<float>& xq, const std::vector<float>& w) {
  double e = 0;
  for (size_t i = 0; i < x.size(); i++) e += w[i] * ((double)x[i] - xq[i]) * ((double)x[i] - xq[i]);
  return e;
}

std::vector<float> reference_roundtrip(uint32_t type, const std::vector<float>& x) {
  const GgmlTypeInfo& t = *ggml_type_info(type);
  std::vector<uint8_t> b(x.size() / t.block * t.bytes);
  t.from_f32(x.data(), b.data(), (int64_t)x.size());
  std::vector<float> out(x.size());
  t.to_f32(b.data(), out.data(), (int64_t)x.size());
  return out;
}

}  // namespace

TEST(GgmlFit, WeightedErrorBelowTheReferenceEncoder) {
  Rng r(11);
  for (uint32_t type : kTypes) {
    const GgmlGrid& g = *ggml_grid(type);
    double ours = 0, ref = 0;
    int worse = 0;
    for (int trial = 0; trial < 64; trial++) {
      std::vector<float> x, w;
      sample(r, g.block, x, w);
      GgmlBlock b;
      fit_block(g, x.data(), w.data(), b);
      std::vector<float> xq(g.block);
      for (int i = 0; i < g.block; i++) xq[i] = ggml_value(g, b, i / g.sub, b.q[i]);
      double e = weighted_error(x, xq, w), e_ref = weighted_error(x, reference_roundtrip(type, x), w);
      EXPECT_NEAR(e, block_error(g, x.data(), w.data(), b), 1e-9 * (1 + e));
      ours += e, ref += e_ref;
      worse += e > e_ref * (1 + 1e-6);
    }
    if (!g.k()) {
      EXPECT_EQ(worse, 0) << ggml_type_info(type)->name;  // the reference parameters are candidates
    }
    EXPECT_LT(ours, 0.9 * ref) << ggml_type_info(type)->name;
  }
}

TEST(GgmlFit, ImportanceMovesTheErrorToUnimportantColumns) {
  Rng r(12);
  for (uint32_t type : {ggml_q4_0, ggml_q4_1, ggml_q4_k, ggml_q3_k}) {
    const GgmlGrid& g = *ggml_grid(type);
    double weighted = 0, plain = 0;
    for (int trial = 0; trial < 32; trial++) {
      std::vector<float> x, w;
      sample(r, g.block, x, w);
      GgmlBlock bw, bu;
      fit_block(g, x.data(), w.data(), bw);
      fit_block(g, x.data(), nullptr, bu);
      weighted += block_error(g, x.data(), w.data(), bw);
      plain += block_error(g, x.data(), w.data(), bu);
    }
    EXPECT_LT(weighted, 0.95 * plain) << ggml_type_info(type)->name;
  }
}

TEST(GgmlFit, EncodedTensorsDecodeToTheFittedValues) {
  Rng r(13);
  for (uint32_t type : kTypes) {
    const GgmlGrid& g = *ggml_grid(type);
    Tensor w({3, 2 * (int64_t)g.block});
    std::vector<float> cw(w.cols());
    for (auto& v : w.data) v = 0.1f * (float)r.normal();
    for (auto& v : cw) v = r.uniform();
    for (int i = 0; i < g.block; i++) w.row(1)[i] = 0.25f;  // a constant block
    for (int i = 0; i < g.sub; i++) cw[i] = 0;               // a sub-block without importance
    GgmlTensor t = encode_ggml(type, w, cw);
    ASSERT_EQ((int64_t)t.data.size(), ggml_bytes(type, 3, w.cols()));
    Tensor back = decode_ggml(t, w.shape);
    for (int64_t row = 0; row < 3; row++)
      for (int64_t k = 0; k < 2; k++) {
        GgmlBlock b;
        const float* x = w.row(row) + k * g.block;
        fit_block(g, x, cw.data() + k * g.block, b);
        for (int i = 0; i < g.block; i++)
          ASSERT_EQ(back.row(row)[k * g.block + i], ggml_value(g, b, i / g.sub, b.q[i])) << ggml_type_info(type)->name;
        // Values on the grid round to their own codes (what GPTQ's output and re-export rely on).
        GgmlBlock again = b;
        code_block(g, back.row(row) + k * g.block, again);
        for (int i = 0; i < g.block; i++)
          ASSERT_EQ(ggml_value(g, again, i / g.sub, again.q[i]), ggml_value(g, b, i / g.sub, b.q[i]));
      }
    if (!g.k() || g.affine) {
      for (int i = 0; i < g.block; i++) EXPECT_NEAR(back.row(1)[i], 0.25f, 2e-4) << ggml_type_info(type)->name;
    }
    for (float v : back.data) ASSERT_TRUE(std::isfinite(v));
  }
  EXPECT_EQ(ggml_bytes(ggml_q4_0, 2, 48), -1);
  EXPECT_EQ(ggml_bytes(ggml_f16, 2, 48), 192);
}

}  // namespace tq
