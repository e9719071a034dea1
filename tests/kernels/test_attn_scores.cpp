// QKᵀ on integer codes: every path equals the reference bit for bit (exact
// int32 sums, one float epilogue), and the scores equal the float product of the
// dequantized operands to float rounding.
#include "core/error.h"
#include "kernel_test.h"
#include "kernels/attn_scores.h"

namespace tq {
namespace {

struct Operand {
  std::vector<int16_t> c;
  std::vector<float> step;
  AttnCodes view(int64_t rows, int64_t ld) const { return {c.data(), step.data(), rows, ld}; }
};

// Codes minus zero points of 8-bit asymmetric quantizers (zero points in [0, 255]).
Operand make(int64_t rows, int64_t ld, Rng& rng) {
  Operand o;
  for (int64_t i = 0; i < rows * ld; i++) o.c.push_back((int16_t)((int)rng.below(256) - (int)rng.below(256)));
  for (int64_t r = 0; r < rows; r++) o.step.push_back(0.001f + 0.1f * rng.uniform());
  return o;
}

class AttnScores : public ::testing::TestWithParam<Isa> {};

TEST_P(AttnScores, MatchesReferenceBitForBit) {
  const Isa isa = GetParam();
  Rng rng(12);
  struct Shape {
    int Sq, Sk, H, KV, hd;
  };
  for (Shape s : {Shape{1, 1, 1, 1, 1}, {1, 37, 4, 2, 64}, {5, 9, 2, 2, 13}, {16, 16, 4, 1, 128}, {7, 33, 3, 3, 80},
                  {2, 70, 2, 1, 31}}) {
    const int64_t ldq = (int64_t)s.H * s.hd + 3, ldk = (int64_t)s.KV * s.hd + 5;
    Operand q = make(s.Sq, ldq, rng), k = make(s.Sk, ldk, rng);
    const float scale = 1.0f / std::sqrt((float)s.hd);
    std::vector<float> S((int64_t)s.H * s.Sq * s.Sk), ref(S.size());
    attn_scores(q.view(s.Sq, ldq), k.view(s.Sk, ldk), s.H, s.KV, s.hd, scale, S.data(), isa);
    attn_scores_ref(q.view(s.Sq, ldq), k.view(s.Sk, ldk), s.H, s.KV, s.hd, scale, ref.data());
    ASSERT_EQ(S, ref) << s.Sq << "x" << s.Sk << " H" << s.H << "/" << s.KV << " hd" << s.hd;
    // Against the dequantized operands in float64.
    double num = 0, den = 0;
    for (int h = 0; h < s.H; h++)
      for (int i = 0; i < s.Sq; i++)
        for (int j = 0; j < s.Sk; j++) {
          double want = 0;
          for (int d = 0; d < s.hd; d++)
            want += (double)q.step[i] * q.c[i * ldq + h * s.hd + d] * k.step[j] *
                    k.c[j * ldk + (h / (s.H / s.KV)) * s.hd + d];
          want *= scale;
          const double got = S[((int64_t)h * s.Sq + i) * s.Sk + j];
          num += (got - want) * (got - want);
          den += want * want;
        }
    EXPECT_LT(std::sqrt(num / den), 1e-6);
  }
}

TEST_P(AttnScores, SameBitsForAnyThreadCount) {
  const Isa isa = GetParam();
  Rng rng(3);
  const int Sq = 64, Sk = 200, H = 8, KV = 2, hd = 64;
  Operand q = make(Sq, H * hd, rng), k = make(Sk, KV * hd, rng);
  std::vector<float> a((int64_t)H * Sq * Sk), b(a.size());
  test::with_threads(1, [&] { attn_scores(q.view(Sq, H * hd), k.view(Sk, KV * hd), H, KV, hd, 0.125f, a.data(), isa); });
  test::with_threads(3, [&] { attn_scores(q.view(Sq, H * hd), k.view(Sk, KV * hd), H, KV, hd, 0.125f, b.data(), isa); });
  EXPECT_EQ(a, b);
}

TEST_P(AttnScores, RejectsSumsThatCouldOverflow) {
  const Isa isa = GetParam();
  const int hd = 64;
  Operand q, k;
  q.c.assign(hd, 32767);
  k.c.assign(hd, 32767);
  q.step = k.step = {1.0f};
  std::vector<float> S(1);
  EXPECT_THROW(attn_scores(q.view(1, hd), k.view(1, hd), 1, 1, hd, 1.0f, S.data(), isa), Error);
  EXPECT_THROW(attn_scores(q.view(1, hd), k.view(1, hd), 3, 2, hd / 3, 1.0f, S.data(), isa), Error);
}

TQ_FOR_EACH_ISA(AttnScores);

}  // namespace
}  // namespace tq
