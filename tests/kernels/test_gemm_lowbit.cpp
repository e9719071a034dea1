// K4: every path gives the same bits as the scalar path, agrees with the plain
// reference, and with dequantize-then-matmul in float64.
#include <cblas.h>

#include "core/dtype.h"
#include "core/error.h"
#include "kernel_test.h"
#include "kernels/gemm_lowbit.h"
#include "test_util.h"

namespace tq {
namespace {

struct Weight {
  std::vector<uint8_t> q;
  std::vector<uint16_t> scale, zero;
  std::vector<float> bias;
  LowbitWeights view;
};

Weight make_weight(int64_t O, int64_t C, int bits, int group, uint64_t seed) {
  Rng rng(seed);
  Weight w;
  w.view = {nullptr, O, C, bits, group};
  const int64_t G = w.view.groups();
  const int qmax = (1 << bits) - 1;
  w.q.resize(O * C);
  for (auto& v : w.q) v = (uint8_t)rng.below(qmax + 1);
  for (int64_t i = 0; i < O * G; i++) {
    w.scale.push_back(f32_to_f16(0.01f + 0.05f * rng.uniform()));
    float z = bits == 4 ? (float)rng.below(qmax + 1) : rng.uniform() * qmax;  // HQQ rounds z only at 4 bits
    w.zero.push_back(f32_to_f16(z));
  }
  for (int64_t o = 0; o < O; o++) w.bias.push_back(rng.uniform() - 0.5f);
  w.view.q = w.q.data();
  w.view.scale = w.scale.data();
  w.view.zero = w.zero.data();
  w.view.bias = w.bias.data();
  return w;
}

// y = x · Ŵᵀ + b in float64 with Ŵ = s·(q − z).
std::vector<double> dequant_matmul(const std::vector<float>& x, int64_t M, int64_t ldx, const LowbitWeights& w) {
  const int64_t G = w.groups();
  std::vector<double> y(M * w.O);
  for (int64_t t = 0; t < M; t++)
    for (int64_t o = 0; o < w.O; o++) {
      double s = w.bias[o];
      for (int64_t c = 0; c < w.C; c++) {
        int64_t g = c / w.group;
        double wh = (double)f16_to_f32(w.scale[o * G + g]) * (w.q[o * w.C + c] - (double)f16_to_f32(w.zero[o * G + g]));
        s += wh * x[t * ldx + c];
      }
      y[t * w.O + o] = s;
    }
  return y;
}

double rel_err(const std::vector<float>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); i++) num += (a[i] - b[i]) * (a[i] - b[i]), den += b[i] * b[i];
  return std::sqrt(num / den);
}

struct Shape {
  int64_t M, O, C;
};
// M = 1 (decode), rows beyond one 4-row chunk, O = 1 and tile tails, C = 172
// (a short last group for every group size), C below one block.
const Shape kShapes[] = {{1, 1, 32}, {1, 64, 256}, {1, 65, 172}, {3, 130, 172}, {5, 7, 33}, {9, 100, 300}, {2, 1, 1},
                         {4, 64, 129}};

class Lowbit : public ::testing::TestWithParam<Isa> {};

TEST_P(Lowbit, MatchesReferenceAndDequantizedMatmul) {
  const Isa isa = GetParam();
  uint64_t seed = 10;
  for (int bits : {2, 3, 4, 8})
    for (int group : {32, 64, 128})
      for (const Shape& s : kShapes) {
        Weight w = make_weight(s.O, s.C, bits, group, seed++);
        LowbitPacked p = pack_lowbit(w.view);
        const int64_t ldx = s.C + 1;
        Rng rng(seed);
        std::vector<float> x(s.M * ldx);
        for (auto& v : x) v = (float)rng.normal();
        std::vector<float> y(s.M * s.O), y_scalar(s.M * s.O), y_ref(s.M * s.O);
        gemm_lowbit(x.data(), s.M, ldx, p, y.data(), s.O, isa);
        gemm_lowbit(x.data(), s.M, ldx, p, y_scalar.data(), s.O, Isa::scalar);
        gemm_lowbit_ref(x.data(), s.M, ldx, w.view, y_ref.data(), s.O);
        std::string what = fmt::format("b{}g{} {}x{}x{}", bits, group, s.M, s.O, s.C);
        EXPECT_EQ(y, y_scalar) << what << ": every path computes the same operations";
        EXPECT_LT(test::rel_err(y, y_ref), 1e-5) << what;
        EXPECT_LT(rel_err(y, dequant_matmul(x, s.M, ldx, w.view)), 1e-5) << what;
      }
}

// The decode shape, 4096 × 4096 at 4 bits, group 64, and a short GEMM:
// against the weight dequantized to f32 and OpenBLAS, and against float64.
TEST_P(Lowbit, LargeAgainstDequantizedSgemm) {
  const Isa isa = GetParam();
  const int64_t O = 4096, C = 4096, G = C / 64;
  Weight w = make_weight(O, C, 4, 64, 77);
  LowbitPacked p = pack_lowbit(w.view);
  EXPECT_EQ(p.bytes(), (size_t)(O * C / 2 + O * G * 4 + O * 4));
  std::vector<float> wf(O * C);
  for (int64_t o = 0; o < O; o++)
    for (int64_t c = 0; c < C; c++)
      wf[o * C + c] = f16_to_f32(w.scale[o * G + c / 64]) * (w.q[o * C + c] - f16_to_f32(w.zero[o * G + c / 64]));
  Rng rng(1);
  for (int64_t M : {1, 3}) {
    std::vector<float> x(M * C), y(M * O), y_blas(M * O);
    for (auto& v : x) v = (float)rng.normal();
    for (int64_t t = 0; t < M; t++) std::copy(w.bias.begin(), w.bias.end(), y_blas.begin() + t * O);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, O, C, 1.0f, x.data(), C, wf.data(), C, 1.0f,
                y_blas.data(), O);
    gemm_lowbit(x.data(), M, C, p, y.data(), O, isa);
    EXPECT_LT(test::rel_err(y, y_blas), 1e-5) << M;
    EXPECT_LT(rel_err(y, dequant_matmul(x, M, C, w.view)), 1e-5) << M;
  }
}

TEST_P(Lowbit, SameBitsForAnyThreadCount) {
  const Isa isa = GetParam();
  Weight w = make_weight(300, 200, 3, 64, 5);
  LowbitPacked p = pack_lowbit(w.view);
  std::vector<float> x(7 * 200, 0.5f), y1(7 * 300), y2(7 * 300), y3(7 * 300);
  for (size_t i = 0; i < x.size(); i++) x[i] = std::sin((float)i);
  test::with_threads(1, [&] { gemm_lowbit(x.data(), 7, 200, p, y1.data(), 300, isa); });
  test::with_threads(2, [&] { gemm_lowbit(x.data(), 7, 200, p, y2.data(), 300, isa); });
  test::with_threads(3, [&] { gemm_lowbit(x.data(), 7, 200, p, y3.data(), 300, isa); });
  EXPECT_EQ(y1, y2);
  EXPECT_EQ(y1, y3);
}

TQ_FOR_EACH_ISA(Lowbit);

TEST(KernelLowbit, RejectsBadFormats) {
  Weight w = make_weight(2, 64, 4, 32, 1);
  LowbitWeights v = w.view;
  v.bits = 5;
  EXPECT_THROW(pack_lowbit(v), Error);
  v = w.view;
  v.group = 48;
  EXPECT_THROW(pack_lowbit(v), Error);
  w.q[3] = 16;
  EXPECT_THROW(pack_lowbit(w.view), Error);
}

}  // namespace
}  // namespace tq
