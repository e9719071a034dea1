// K5: every path's A and B equal the reference sums exactly; the output
// equals P̂·V̂ in float64 within docs/methods.md §6.3 item 12 (1e-6 for b ≤ 6,
// 1e-9 for b = 7, 8 with the 48-bit truncation).
#include "core/error.h"
#include "kernel_test.h"
#include "kernels/pv_log.h"

namespace tq {
namespace {

// Log√2 codes of softmax rows of random logits, causally masked past `causal_at + i`.
std::vector<uint8_t> softmax_codes(int64_t rows, int64_t cols, int bits, float step, int64_t causal_at, Rng& rng) {
  std::vector<uint8_t> q(rows * cols);
  const int levels = bits == 8 ? 255 : 1 << bits;
  for (int64_t i = 0; i < rows; i++) {
    std::vector<double> p(cols);
    double sum = 0;
    const int64_t n = std::min(cols, causal_at + i);
    for (int64_t j = 0; j < n; j++) sum += p[j] = std::exp(3 * rng.normal());
    for (int64_t j = 0; j < cols; j++) {
      double x = j < n ? p[j] / sum : 0;
      long e = x > 0 ? std::lround(-2 * std::log2(x / step)) : levels;
      q[i * cols + j] = e >= levels ? 0xFF : (uint8_t)std::max(e, 0L);
    }
  }
  return q;
}

// O = P̂·V̂ in float64 from the dequantized operands.
std::vector<double> dequant_pv(const LogProbs& p, const Int8Values& v) {
  std::vector<double> o(p.rows * v.cols, 0.0);
  for (int64_t i = 0; i < p.rows; i++)
    for (int64_t j = 0; j < p.cols; j++) {
      const int q = p.q[i * p.ld + j];
      if (q == 0xFF) continue;
      const double ph = p.step * std::exp2(-q / 2.0);
      for (int64_t k = 0; k < v.cols; k++) o[i * v.cols + k] += ph * v.scale * (v.v[j * v.ld + k] - v.zero);
    }
  return o;
}

double rel(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); i++) num += (a[i] - b[i]) * (a[i] - b[i]), den += b[i] * b[i];
  return std::sqrt(num / den);
}

struct Shape {
  int64_t Sq, Sk, D;
};
const Shape kShapes[] = {{1, 1, 1}, {1, 37, 64}, {5, 64, 3}, {7, 100, 65}, {16, 16, 128}, {3, 250, 200}, {2, 9, 13}};

class PvLog : public ::testing::TestWithParam<Isa> {};

TEST_P(PvLog, SumsExactAndOutputMatchesFloat64) {
  const Isa isa = GetParam();
  Rng rng(4);
  for (int bits = 2; bits <= 8; bits++)
    for (const Shape& s : kShapes)
      for (int32_t zero : {0, 3}) {
        const float step = 0.5f;
        std::vector<uint8_t> q = softmax_codes(s.Sq, s.Sk, bits, step, s.Sk / 2 + 1, rng);
        std::vector<int8_t> vv(s.Sk * (s.D + 2));
        for (auto& x : vv) x = (int8_t)(rng.below(255) - 127);
        LogProbs p{q.data(), s.Sq, s.Sk, s.Sk, bits, step};
        Int8Values v{vv.data(), s.Sk, s.D, s.D + 2, 0.02f, zero};
        std::string what = fmt::format("b{} {}x{}x{} z{}", bits, s.Sq, s.Sk, s.D, zero);
        const int64_t n = s.Sq * s.D;
        std::vector<int64_t> A(n), B(n), A_ref(n), B_ref(n);
        pv_log_acc(p, v, A.data(), B.data(), s.D, isa);
        pv_log_acc_ref(p, v, A_ref.data(), B_ref.data(), s.D);
        ASSERT_EQ(A, A_ref) << what;
        ASSERT_EQ(B, B_ref) << what;
        std::vector<float> out(n), out_ref(n);
        pv_log(p, v, out.data(), s.D, isa);
        pv_log_ref(p, v, out_ref.data(), s.D);
        test::expect_close(out, out_ref, 1e-6, what);
        // The shift-add result in float64 against P̂·V̂ from dequantized operands.
        const int K = std::min(((1 << bits) - 1 + 1) / 2, 48);
        std::vector<double> o(n);
        for (int64_t i = 0; i < n; i++)
          o[i] = (double)step * v.scale * std::ldexp(1.0, -K) * ((double)A[i] + (std::sqrt(2.0) - 1) * (double)B[i]);
        const std::vector<double> exact = dequant_pv(p, v);
        EXPECT_LT(rel(o, exact), bits <= 6 ? 1e-6 : 1e-9) << what;
        std::vector<double> of(out.begin(), out.end());
        EXPECT_LT(rel(of, exact), 1e-6) << what;
      }
}

TEST_P(PvLog, ZeroCodesAndTruncation) {
  const Isa isa = GetParam();
  // Row 0: every key is the zero code. Row 1 (b = 8): e = 48 is the last level kept.
  std::vector<uint8_t> q = {0xFF, 0xFF, 0xFF, 96, 97, 0};
  std::vector<int8_t> vv = {5, -7, 100, 1, 2, 3};
  LogProbs p{q.data(), 2, 3, 3, 8, 1.0f};
  Int8Values v{vv.data(), 3, 2, 2, 1.0f, 0};
  std::vector<int64_t> A(4), B(4);
  pv_log_acc(p, v, A.data(), B.data(), 2, isa);
  EXPECT_EQ(A[0], 0);
  EXPECT_EQ(A[1], 0);
  // q = 96 (e = 48) adds v << 0, q = 97 (e = 49) is dropped, q = 0 adds v << 48.
  EXPECT_EQ(A[2], 5 + ((int64_t)2 << 48));
  EXPECT_EQ(A[3], -7 + ((int64_t)3 << 48));
  EXPECT_EQ(B[2], 0);
  EXPECT_EQ(B[3], 0);
}

TEST_P(PvLog, RejectsOverflowAndBadCodes) {
  const Isa isa = GetParam();
  std::vector<int8_t> vv(300, -128);
  std::vector<float> out(1);
  // 255 keys at the top level of an 8-bit row fit int64; 256 might not.
  std::vector<uint8_t> q(300, 0);
  EXPECT_NO_THROW(pv_log({q.data(), 1, 255, 300, 8, 1.0f}, {vv.data(), 255, 1, 1, 1.0f, 0}, out.data(), 1, isa));
  std::vector<int64_t> A(1), B(1);
  pv_log_acc({q.data(), 1, 255, 300, 8, 1.0f}, {vv.data(), 255, 1, 1, 1.0f, 0}, A.data(), B.data(), 1, isa);
  EXPECT_EQ(A[0], -128 * 255 * ((int64_t)1 << 48));
  EXPECT_THROW(pv_log({q.data(), 1, 256, 300, 8, 1.0f}, {vv.data(), 256, 1, 1, 1.0f, 0}, out.data(), 1, isa), Error);
  q[0] = 16;  // beyond 4 bits
  EXPECT_THROW(pv_log({q.data(), 1, 3, 300, 4, 1.0f}, {vv.data(), 3, 1, 1, 1.0f, 0}, out.data(), 1, isa), Error);
}

TQ_FOR_EACH_ISA(PvLog);

}  // namespace
}  // namespace tq
