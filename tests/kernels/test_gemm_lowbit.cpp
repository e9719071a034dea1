// K4 and K4-a8: every path gives the same bits as the scalar path; K4 agrees
// with its plain reference and with dequantize-then-matmul in float64; K4-a8
// equals its reference bit for bit; ggml's legacy blocks pack exactly.
#include <cblas.h>

#include "core/dtype.h"
#include "core/error.h"
#include "io/ggml_quants.h"
#include "io/ggml_types.h"
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

// min: ggml's form, x = s·q + m with m of either sign.
Weight make_weight(int64_t O, int64_t C, int bits, int group, uint64_t seed, bool min = false) {
  Rng rng(seed);
  Weight w;
  w.view = {nullptr, O, C, bits, group};
  w.view.min = min;
  const int64_t G = w.view.groups();
  const int qmax = (1 << bits) - 1;
  w.q.resize(O * C);
  for (auto& v : w.q) v = (uint8_t)rng.below(qmax + 1);
  for (int64_t i = 0; i < O * G; i++) {
    const float s = 0.01f + 0.05f * rng.uniform();
    w.scale.push_back(f32_to_f16(s));
    float z = bits == 4 ? (float)rng.below(qmax + 1) : rng.uniform() * qmax;  // HQQ rounds z only at 4 bits
    w.zero.push_back(f32_to_f16(min ? -s * z : z));
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
        const double sc = f16_to_f32(w.scale[o * G + g]), z = f16_to_f32(w.zero[o * G + g]);
        const double wh = w.min ? sc * w.q[o * w.C + c] + z : sc * (w.q[o * w.C + c] - z);
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
  for (int bits = 2; bits <= 8; bits++)
    for (int group : {32, 64, 128})
      for (const Shape& s : kShapes) {
        const bool min = (seed % 3) == 0;
        Weight w = make_weight(s.O, s.C, bits, group, seed++, min);
        LowbitPacked p = pack_lowbit(w.view);
        const int64_t ldx = s.C + 1;
        Rng rng(seed);
        std::vector<float> x(s.M * ldx);
        for (auto& v : x) v = (float)rng.normal();
        std::vector<float> y(s.M * s.O), y_scalar(s.M * s.O), y_ref(s.M * s.O);
        gemm_lowbit(x.data(), s.M, ldx, p, y.data(), s.O, isa);
        gemm_lowbit(x.data(), s.M, ldx, p, y_scalar.data(), s.O, Isa::scalar);
        gemm_lowbit_ref(x.data(), s.M, ldx, w.view, y_ref.data(), s.O);
        std::string what = fmt::format("b{}g{}{} {}x{}x{}", bits, group, min ? " min" : "", s.M, s.O, s.C);
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

// Activation codes as a site quantizer leaves them (the full s8 range, −128 included) and a step per row.
struct Codes {
  std::vector<int8_t> q;
  std::vector<float> step;
};
Codes make_codes(int64_t M, int64_t ld, uint64_t seed) {
  Rng rng(seed);
  Codes a;
  a.q.resize(M * ld);
  for (auto& v : a.q) v = (int8_t)((int)rng.below(256) - 128);
  for (int64_t t = 0; t < M; t++) a.step.push_back(0.001f + 0.01f * rng.uniform());
  return a;
}

// y = (α·a) · Ŵᵀ + b in float64.
std::vector<double> a8_dequant_matmul(const Codes& a, int64_t M, int64_t lda, const LowbitWeights& w) {
  std::vector<float> x(M * lda);
  for (int64_t t = 0; t < M; t++)
    for (int64_t c = 0; c < lda; c++) x[t * lda + c] = a.q[t * lda + c];
  std::vector<double> y = dequant_matmul(x, M, lda, w);
  for (int64_t t = 0; t < M; t++)
    for (int64_t o = 0; o < w.O; o++) y[t * w.O + o] = a.step[t] * (y[t * w.O + o] - w.bias[o]) + w.bias[o];
  return y;
}

// Beyond kShapes: whole and partial 32-row blocks (AMX), a last block of ≤ 16 rows.
const Shape kA8Shapes[] = {{32, 64, 128}, {40, 70, 256}, {17, 33, 96}};

TEST_P(Lowbit, A8EqualsReferenceBitForBit) {
  const Isa isa = GetParam();
  uint64_t seed = 500;
  std::vector<Shape> shapes(std::begin(kShapes), std::end(kShapes));
  shapes.insert(shapes.end(), std::begin(kA8Shapes), std::end(kA8Shapes));
  for (int bits = 2; bits <= 8; bits++)
    for (int group : {32, 64, 128})
      for (const Shape& s : shapes) {
        const bool min = (seed % 3) == 1;
        Weight w = make_weight(s.O, s.C, bits, group, seed++, min);
        LowbitPacked p = pack_lowbit(w.view);
        const int64_t lda = s.C + 3;
        Codes a = make_codes(s.M, lda, seed);
        std::vector<float> y(s.M * (s.O + 1), -1.0f), y_ref(s.M * s.O);
        gemm_lowbit_a8(a.q.data(), a.step.data(), s.M, lda, p, y.data(), s.O + 1, isa);
        gemm_lowbit_a8_ref(a.q.data(), a.step.data(), s.M, lda, w.view, y_ref.data(), s.O);
        std::string what = fmt::format("b{}g{}{} {}x{}x{}", bits, group, min ? " min" : "", s.M, s.O, s.C);
        std::vector<float> got(s.M * s.O);
        for (int64_t t = 0; t < s.M; t++) {
          for (int64_t o = 0; o < s.O; o++) got[t * s.O + o] = y[t * (s.O + 1) + o];
          ASSERT_EQ(y[t * (s.O + 1) + s.O], -1.0f) << what << ": the gap of the output stride stays";
        }
        ASSERT_EQ(got, y_ref) << what;
        EXPECT_LT(rel_err(got, a8_dequant_matmul(a, s.M, lda, w.view)), 1e-5) << what;
      }
}

// The extremes: codes at 2^bits − 1 against activations at −128 over a long row (one group).
TEST_P(Lowbit, A8ExtremeCodesAreExact) {
  const Isa isa = GetParam();
  for (int bits : {4, 7, 8}) {
    const int64_t O = 70, C = 4096;
    Weight w = make_weight(O, C, bits, 4096, 3);
    std::fill(w.q.begin(), w.q.end(), (uint8_t)((1 << bits) - 1));
    std::fill(w.zero.begin(), w.zero.end(), f32_to_f16(0.0f));
    std::fill(w.scale.begin(), w.scale.end(), f32_to_f16(1.0f));
    LowbitPacked p = pack_lowbit(w.view);
    std::vector<int8_t> a(2 * C, -128);
    std::vector<float> step{1.0f, 1.0f}, y(2 * O);
    gemm_lowbit_a8(a.data(), step.data(), 2, C, p, y.data(), O, isa);
    for (int64_t o = 0; o < O; o++) ASSERT_EQ(y[o], (float)(-128.0 * ((1 << bits) - 1) * C) + w.bias[o]) << bits;
  }
}

// Large enough that the preparation and the products both run on several threads.
TEST_P(Lowbit, A8SameBitsForAnyThreadCount) {
  const Isa isa = GetParam();
  const int64_t M = 70, O = 300, C = 1024;
  Weight w = make_weight(O, C, 5, 64, 6);
  LowbitPacked p = pack_lowbit(w.view);
  Codes a = make_codes(M, C, 4);
  std::vector<float> y1(M * O), y2(M * O), y3(M * O), y_ref(M * O);
  test::with_threads(1, [&] { gemm_lowbit_a8(a.q.data(), a.step.data(), M, C, p, y1.data(), O, isa); });
  test::with_threads(2, [&] { gemm_lowbit_a8(a.q.data(), a.step.data(), M, C, p, y2.data(), O, isa); });
  test::with_threads(3, [&] { gemm_lowbit_a8(a.q.data(), a.step.data(), M, C, p, y3.data(), O, isa); });
  gemm_lowbit_a8_ref(a.q.data(), a.step.data(), M, C, w.view, y_ref.data(), O);
  EXPECT_EQ(y1, y_ref);
  EXPECT_EQ(y1, y2);
  EXPECT_EQ(y1, y3);
}

// ggml's legacy blocks, encoded by the reference encoders: packed exactly (K4 against the ggml
// decoder's weight in float64), and K4-a8 equal to its reference on the blocks' own codes.
TEST_P(Lowbit, GgmlBlocksPackExactly) {
  const Isa isa = GetParam();
  const int64_t O = 70, C = 160, M = 5;
  Rng rng(21);
  std::vector<float> wf(O * C), bias(O);
  for (auto& v : wf) v = (float)rng.normal();
  for (auto& v : bias) v = rng.uniform() - 0.5f;
  for (uint32_t type : {ggml_q4_0, ggml_q4_1, ggml_q5_0, ggml_q5_1, ggml_q8_0}) {
    const GgmlTypeInfo* ti = ggml_type_info(type);
    std::vector<uint8_t> blocks(O * C / 32 * ti->bytes);
    ti->from_f32(wf.data(), blocks.data(), O * C);
    std::vector<float> decoded(O * C);
    ti->to_f32(blocks.data(), decoded.data(), O * C);
    LowbitPacked p = pack_ggml(type, blocks.data(), O, C, bias.data());
    // K4 against the decoded weight.
    std::vector<float> x(M * C), y(M * O);
    for (auto& v : x) v = (float)rng.normal();
    gemm_lowbit(x.data(), M, C, p, y.data(), O, isa);
    std::vector<double> want(M * O);
    for (int64_t t = 0; t < M; t++)
      for (int64_t o = 0; o < O; o++) {
        double s = bias[o];
        for (int64_t c = 0; c < C; c++) s += (double)decoded[o * C + c] * x[t * C + c];
        want[t * O + o] = s;
      }
    EXPECT_LT(rel_err(y, want), 1e-5) << ti->name;
    // K4-a8 against its reference on the unpacked blocks.
    const bool q8 = type == ggml_q8_0, with_min = type == ggml_q4_1 || type == ggml_q5_1;
    Weight w;
    w.q.resize(O * C);
    for (int64_t o = 0; o < O; o++)
      for (int64_t g = 0; g < C / 32; g++) {
        int32_t codes[32];
        uint16_t d, m;
        unpack_legacy_block(type, blocks.data() + (o * C / 32 + g) * ti->bytes, codes, d, m);
        for (int i = 0; i < 32; i++) w.q[o * C + g * 32 + i] = (uint8_t)(codes[i] + (q8 ? 128 : 0));
        w.scale.push_back(d);
        w.zero.push_back(with_min ? m : f32_to_f16(q8 ? 128.0f : type == ggml_q4_0 ? 8.0f : 16.0f));
      }
    w.view = {w.q.data(), O, C, q8 ? 8 : type == ggml_q4_0 || type == ggml_q4_1 ? 4 : 5, 32,
              w.scale.data(), w.zero.data(), bias.data(), with_min};
    Codes a = make_codes(M, C, 7);
    std::vector<float> ya(M * O), ya_ref(M * O);
    gemm_lowbit_a8(a.q.data(), a.step.data(), M, C, p, ya.data(), O, isa);
    gemm_lowbit_a8_ref(a.q.data(), a.step.data(), M, C, w.view, ya_ref.data(), O);
    EXPECT_EQ(ya, ya_ref) << ti->name;
  }
  std::vector<uint8_t> q4k(256 / 256 * 144);
  EXPECT_THROW(pack_ggml(ggml_q4_k, q4k.data(), 1, 256), Error);
  EXPECT_THROW(pack_ggml(ggml_q4_0, q4k.data(), 1, 48), Error);
}

TQ_FOR_EACH_ISA(Lowbit);

TEST(KernelLowbit, RejectsBadFormats) {
  Weight w = make_weight(2, 64, 4, 32, 1);
  LowbitWeights v = w.view;
  v.bits = 9;
  EXPECT_THROW(pack_lowbit(v), Error);
  v.bits = 1;
  EXPECT_THROW(pack_lowbit(v), Error);
  v = w.view;
  v.group = 48;
  EXPECT_THROW(pack_lowbit(v), Error);
  w.q[3] = 16;
  EXPECT_THROW(pack_lowbit(w.view), Error);
}

}  // namespace
}  // namespace tq
