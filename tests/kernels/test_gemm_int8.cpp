// K1–K3: every path equals the plain reference bit for bit on the int32 sums
// and agrees on the f32 epilogue; the zero-point identities hold exactly.
#include <cstdlib>

#include "core/error.h"
#include "kernel_test.h"
#include "kernels/gemm_int8.h"

namespace tq {
namespace {

using test::expect_close;

struct Case {
  int64_t M, O, C;
};

// Odd sizes, M = 1, N = 1, depth not a multiple of 4 or 64, tails of every tile.
const Case kCases[] = {{1, 1, 1},   {1, 64, 64},   {1, 17, 5},     {2, 1, 200},  {3, 65, 131}, {7, 130, 257},
                       {6, 64, 64}, {13, 33, 67},  {16, 200, 1024}, {31, 15, 3}, {33, 97, 130}, {100, 70, 96},
                       {1, 130, 1000}, {97, 1, 33}};

struct Data {
  std::vector<int8_t> w, a_s8;
  std::vector<uint8_t> a_u8;
  std::vector<float> scale, bias, row_step;
  std::vector<int32_t> zw;
};

Data make(const Case& c, uint64_t seed) {
  Rng rng(seed);
  Data d;
  d.w.resize(c.O * c.C);
  for (auto& v : d.w) v = (int8_t)(rng.below(256) - 128);
  d.a_u8.resize(c.M * (c.C + 3));  // row stride C + 3
  for (auto& v : d.a_u8) v = (uint8_t)rng.below(256);
  d.a_s8.resize(d.a_u8.size());
  for (auto& v : d.a_s8) v = (int8_t)(rng.below(256) - 128);
  for (int64_t o = 0; o < c.O; o++) {
    d.scale.push_back(0.001f + rng.uniform() * 0.01f);
    d.bias.push_back(rng.uniform() - 0.5f);
    d.zw.push_back((int32_t)rng.below(41) - 20);
  }
  for (int64_t t = 0; t < c.M; t++) d.row_step.push_back(0.01f + rng.uniform());
  return d;
}

// The activation kinds: K1 with zero points inside and outside [0, 255], K2, K3.
std::vector<std::pair<std::string, Int8Acts>> kinds(const Data& d, const Case& c) {
  int64_t ld = c.C + 3;
  return {{"K1 z=0", acts_u8(d.a_u8.data(), c.M, ld, 0.02f, 0)},
          {"K1 z=131", acts_u8(d.a_u8.data(), c.M, ld, 0.02f, 131)},
          {"K1 z=-7", acts_u8(d.a_u8.data(), c.M, ld, 0.03f, -7)},
          {"K2", acts_s8(d.a_s8.data(), c.M, ld)},
          {"K3", acts_s8_per_token(d.a_s8.data(), d.row_step.data(), c.M, ld)}};
}

class Int8Gemm : public ::testing::TestWithParam<Isa> {};

TEST_P(Int8Gemm, MatchesReference) {
  const Isa isa = GetParam();
  uint64_t seed = 1;
  for (const Case& c : kCases) {
    Data d = make(c, seed++);
    for (bool asym : {false, true})
      for (bool bias : {false, true}) {
        Int8Weights w{d.w.data(), c.O, c.C, d.scale.data(), bias ? d.bias.data() : nullptr,
                      asym ? d.zw.data() : nullptr};
        Int8Packed p = pack_int8(w);
        for (auto& [name, a] : kinds(d, c)) {
          std::string what = fmt::format("{} {}x{}x{} asym={} bias={}", name, c.M, c.O, c.C, asym, bias);
          std::vector<int32_t> s_ref(c.M * c.O), s(c.M * (c.O + 1), -1);
          gemm_int8_ref_s32(a, w, s_ref.data(), c.O);
          gemm_int8_s32(a, p, s.data(), c.O + 1, isa);  // a wider output stride: the gap stays untouched
          for (int64_t t = 0; t < c.M; t++) {
            for (int64_t o = 0; o < c.O; o++) ASSERT_EQ(s[t * (c.O + 1) + o], s_ref[t * c.O + o]) << what;
            ASSERT_EQ(s[t * (c.O + 1) + c.O], -1) << what;
          }
          std::vector<float> y_ref(c.M * c.O), y(c.M * c.O);
          gemm_int8_ref(a, w, y_ref.data(), c.O);
          gemm_int8(a, p, y.data(), c.O, isa);
          expect_close(y, y_ref, 1e-6, what);
        }
      }
  }
}

// acc − z·R_o = Σ_c Wq[o,c]·(q_c − z), and with weight zero points
// acc − z·R_o − zw_o·S_t + C·z·zw_o = Σ_c (Wq[o,c] − zw_o)·(q_c − z), exactly.
TEST_P(Int8Gemm, ZeroPointIdentity) {
  const Isa isa = GetParam();
  const Case c{5, 37, 301};
  Data d = make(c, 99);
  Int8Weights sym{d.w.data(), c.O, c.C, d.scale.data()}, asym = sym;
  asym.zero = d.zw.data();
  Int8Packed p = pack_int8(sym), pa = pack_int8(asym);
  const int64_t ld = c.C + 3;
  std::vector<int32_t> raw(c.M * c.O), dz(c.M * c.O), dza(c.M * c.O);
  gemm_int8_s32(acts_u8(d.a_u8.data(), c.M, ld, 1, 0), p, raw.data(), c.O, isa);
  for (int32_t z : {0, 1, 77, 128, 255, -300, 1000}) {
    gemm_int8_s32(acts_u8(d.a_u8.data(), c.M, ld, 1, z), p, dz.data(), c.O, isa);
    gemm_int8_s32(acts_u8(d.a_u8.data(), c.M, ld, 1, z), pa, dza.data(), c.O, isa);
    for (int64_t t = 0; t < c.M; t++) {
      int64_t S = 0;
      for (int64_t k = 0; k < c.C; k++) S += d.a_u8[t * ld + k];
      for (int64_t o = 0; o < c.O; o++) {
        int64_t direct = 0, direct_a = 0, R = p.row_sum[o], zw = d.zw[o];
        for (int64_t k = 0; k < c.C; k++) {
          direct += (int64_t)d.w[o * c.C + k] * (d.a_u8[t * ld + k] - z);
          direct_a += ((int64_t)d.w[o * c.C + k] - zw) * (d.a_u8[t * ld + k] - z);
        }
        int64_t acc = raw[t * c.O + o];
        ASSERT_EQ(acc - z * R, direct) << "z=" << z;
        ASSERT_EQ(dz[t * c.O + o], direct) << "z=" << z;
        ASSERT_EQ(acc - z * R - zw * S + c.C * z * zw, direct_a) << "z=" << z;
        ASSERT_EQ(dza[t * c.O + o], direct_a) << "z=" << z;
      }
    }
  }
}

// The largest sums int32 holds: C = 65,793 with every product at 255·(−128).
TEST_P(Int8Gemm, Int32BoundIsExactAndEnforced) {
  const Isa isa = GetParam();
  const int64_t C = 65793, O = 17;
  std::vector<int8_t> w(O * C, -128);
  std::vector<float> scale(O, 1.0f);
  std::vector<uint8_t> a(C, 255);
  Int8Packed p = pack_int8({w.data(), O, C, scale.data()});
  std::vector<int32_t> d(O);
  gemm_int8_s32(acts_u8(a.data(), 1, C, 1, 0), p, d.data(), O, isa);
  for (int32_t v : d) ASSERT_EQ(v, -2147483520);
  std::vector<int8_t> a8(C, -128), w8(O * C, -128);
  for (int64_t i = 0; i < O * C; i += 2) w8[i] = 127;  // stays within ±2^31 for s8 × s8
  Int8Packed p8 = pack_int8({w8.data(), O, C, scale.data()});
  std::vector<int32_t> d_ref(O);
  gemm_int8_s32(acts_s8(a8.data(), 1, C), p8, d.data(), O, isa);
  gemm_int8_ref_s32(acts_s8(a8.data(), 1, C), {w8.data(), O, C, scale.data()}, d_ref.data(), O);
  ASSERT_EQ(d, d_ref);
  // One more input column could overflow: rejected, as is a far zero point.
  std::vector<int8_t> w1(C + 1, -128);
  std::vector<uint8_t> a1(C + 1, 255);
  Int8Packed p1 = pack_int8({w1.data(), 1, C + 1, scale.data()});
  EXPECT_THROW(gemm_int8_s32(acts_u8(a1.data(), 1, C + 1, 1, 0), p1, d.data(), 1, isa), Error);
  EXPECT_THROW(gemm_int8_s32(acts_u8(a.data(), 1, C, 1, 256), p, d.data(), O, isa), Error);
}

TEST_P(Int8Gemm, SameBitsForAnyThreadCount) {
  const Isa isa = GetParam();
  const Case c{50, 300, 777};
  Data d = make(c, 5);
  Int8Packed p = pack_int8({d.w.data(), c.O, c.C, d.scale.data(), d.bias.data()});
  auto a = acts_s8_per_token(d.a_s8.data(), d.row_step.data(), c.M, c.C + 3);
  std::vector<float> y1(c.M * c.O), y2(c.M * c.O), y3(c.M * c.O);
  test::with_threads(1, [&] { gemm_int8(a, p, y1.data(), c.O, isa); });
  test::with_threads(2, [&] { gemm_int8(a, p, y2.data(), c.O, isa); });
  test::with_threads(3, [&] { gemm_int8(a, p, y3.data(), c.O, isa); });
  EXPECT_EQ(y1, y2);
  EXPECT_EQ(y1, y3);
}

TEST_P(Int8Gemm, QuantizePerTokenMatchesReference) {
  const Isa isa = GetParam();
  Rng rng(3);
  for (int64_t C : {1, 7, 16, 33, 100, 4096}) {
    const int64_t M = 6, ldx = C + 5;
    std::vector<float> x(M * ldx);
    for (auto& v : x) v = (float)rng.normal() * 3;
    for (int64_t c = 0; c < C; c++) x[2 * ldx + c] = 0;  // an all-zero row: step 1
    // Exact ties at ±(n + 0.5) steps: the row maximum is 127·0.5, so the step is 0.5.
    for (int64_t c = 0; c < C; c++) x[3 * ldx + c] = (float)((int)(c % 50) - 25) * 0.5f + 0.25f;
    x[3 * ldx] = 63.5f;
    std::vector<int8_t> q(M * C), q_ref(M * C);
    std::vector<float> s(M), s_ref(M);
    quantize_per_token_ref(x.data(), M, C, ldx, q_ref.data(), C, s_ref.data());
    quantize_per_token(x.data(), M, C, ldx, q.data(), C, s.data(), isa);
    EXPECT_EQ(q, q_ref) << C;
    EXPECT_EQ(s, s_ref) << C;
    EXPECT_EQ(s[2], 1.0f);
    for (int64_t c = 1; c < C; c++) EXPECT_EQ(q_ref[3 * C + c] % 2, 0) << "ties round to even";
  }
}

TEST_P(Int8Gemm, RejectsBadCalls) {
  const Isa isa = GetParam();
  std::vector<int8_t> w(4 * 8, 1);
  std::vector<float> scale(4, 1), y(4);
  std::vector<int8_t> a(8, 1);
  Int8Packed p = pack_int8({w.data(), 4, 8, scale.data()});
  Int8Acts bad = acts_s8(a.data(), 1, 8);
  bad.zero = 3;
  EXPECT_THROW(gemm_int8(bad, p, y.data(), 4, isa), Error);
  EXPECT_THROW(gemm_int8(acts_s8(a.data(), 1, 7), p, y.data(), 4, isa), Error);
  EXPECT_THROW(gemm_int8(acts_s8(a.data(), 1, 8), p, y.data(), 3, isa), Error);
}

TEST_P(Int8Gemm, EmptyShapes) {
  const Isa isa = GetParam();
  std::vector<int8_t> w(3 * 5, 1);
  std::vector<float> scale(3, 1), bias{1, 2, 3}, y(3, -1);
  std::vector<int8_t> a(5, 1);
  Int8Packed p = pack_int8({w.data(), 3, 5, scale.data()});
  gemm_int8(acts_s8(a.data(), 0, 5), p, y.data(), 3, isa);
  EXPECT_EQ(y[0], -1);
  Int8Packed p0 = pack_int8({w.data(), 3, 0, scale.data(), bias.data()});
  gemm_int8(acts_s8(a.data(), 1, 0), p0, y.data(), 3, isa);
  EXPECT_EQ(y, bias);
}

TQ_FOR_EACH_ISA(Int8Gemm);

TEST(KernelCpu, ForcedPathAndUnknownNames) {
  EXPECT_EQ(parse_isa("avx2"), Isa::avx2);
  EXPECT_THROW(parse_isa("sse9"), Error);
  EXPECT_EQ(resolve_isa(Isa::scalar), Isa::scalar);
  const char* old = std::getenv("TQ_ISA");
  std::string saved = old ? old : "";
  setenv("TQ_ISA", "scalar", 1);
  EXPECT_EQ(resolve_isa(Isa::automatic), Isa::scalar);
  unsetenv("TQ_ISA");
  EXPECT_EQ(resolve_isa(Isa::automatic), best_isa());
  for (Isa i : {Isa::avx2, Isa::avx512, Isa::amx}) {
    if (!isa_supported(i)) {
      EXPECT_THROW(resolve_isa(i), Error) << isa_name(i);
    }
  }
  if (old) setenv("TQ_ISA", saved.c_str(), 1);
  EXPECT_EQ(supported_isas().front(), Isa::scalar);
}

}  // namespace
}  // namespace tq
