// docs/methods.md §6.1 (quantizers) and §6.7 items 31–32 (RTN, percentile, OMSE, KL).
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "core/error.h"
#include "core/rng.h"
#include "quant/calibrator.h"
#include "quant/plan.h"
#include "quant/quantizer.h"
#include "quant/weights.h"

namespace tq {

namespace {
std::vector<float> randn(int n, uint64_t seed, float scale = 1.0f) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = scale * (float)r.normal();
  return v;
}
}  // namespace

TEST(Quantizer, AsymmetricErrorBoundAndZero) {
  for (int bits = 2; bits <= 8; bits++) {
    float l = -0.7f, u = 2.3f, step, zero;
    asym_params(l, u, bits, 2.3f, step, zero);
    EXPECT_EQ(q_asym(0.0f, step, zero, bits) - zero, 0.0f);
    EXPECT_EQ(step * ((float)q_asym(0.0f, step, zero, bits) - zero), 0.0f);  // Q(0) = 0 exactly
    Rng r(bits);
    for (int i = 0; i < 20000; i++) {
      float x = l + (u - l) * r.uniform();
      int q = q_asym(x, step, zero, bits);
      ASSERT_GE(q, 0);
      ASSERT_LE(q, (1 << bits) - 1);
      float xh = step * ((float)q - zero);
      ASSERT_LE(std::fabs(x - xh), step / 2 * (1 + 1e-6f) + 1e-7f) << bits << " " << x;
    }
  }
}

TEST(Quantizer, SymmetricIsOddAndNeverUsesTheExtraCode) {
  for (int bits = 2; bits <= 8; bits++) {
    float T = 1.7f, step = sym_step(T, bits, T);
    int qs = (1 << (bits - 1)) - 1;
    EXPECT_EQ(q_sym(0.0f, step, bits), 0);
    Rng r(bits + 100);
    for (int i = 0; i < 20000; i++) {
      float x = T * (2 * r.uniform() - 1);
      int q = q_sym(x, step, bits);
      ASSERT_EQ(q_sym(-x, step, bits), -q);
      ASSERT_GE(q, -qs);
      ASSERT_LE(std::fabs(x - step * q), step / 2 * (1 + 1e-6f) + 2e-7f * T);  // plus an ulp of rounding
    }
  }
}

TEST(Quantizer, RoundsHalfToEven) {
  // Golden codes at exact ties (as NumPy/PyTorch round): x/Δ = 0.5, 1.5, 2.5, −0.5, −1.5, −2.5.
  float step = 0.25f;
  std::vector<float> x = {0.125f, 0.375f, 0.625f, -0.125f, -0.375f, -0.625f};
  std::vector<int> golden = {0, 2, 2, 0, -2, -2};
  for (size_t i = 0; i < x.size(); i++) EXPECT_EQ(q_sym(x[i], step, 8), golden[i]) << x[i];
  EXPECT_EQ(q_asym(0.375f, step, 3.0f, 8), 5);  // 1.5 → 2, plus zero 3
}

TEST(Quantizer, LogQuantizersStayWithinHalfALevel) {
  for (int bits = 3; bits <= 8; bits++) {
    float step = 1.0f;
    EXPECT_EQ(q_log2(0.0f, step, bits), -1);
    EXPECT_EQ(q_logsqrt2(0.0f, step, bits), -1);
    if (bits <= 6) {  // below the smallest level: underflow maps to the zero code
      EXPECT_EQ(q_log2(std::ldexp(1.0f, -(1 << bits) - 1), step, bits), -1);
      EXPECT_EQ(q_logsqrt2(std::ldexp(1.0f, -(1 << bits) / 2 - 1), step, bits), -1);
    }
    float prev2 = 0, prevs = 0;
    for (int i = 0; i <= 4000; i++) {
      float x = std::pow(2.0f, -12.0f * i / 4000.0f);  // 1 down to 2^-12
      float x2 = dq_log2(q_log2(x, step, bits), step), xs = dq_logsqrt2(q_logsqrt2(x, step, bits), step);
      if (x2 > 0 && q_log2(x, step, bits) < std::min(1 << bits, 255) - 1) {
        ASSERT_LE(std::fabs(std::log2(x2 / x)), 0.5 + 1e-6) << bits << " " << x;
      }
      if (xs > 0 && q_logsqrt2(x, step, bits) < std::min(1 << bits, 255) - 1) {
        ASSERT_LE(std::fabs(std::log2(xs / x)), 0.25 + 1e-6) << bits << " " << x;
      }
      if (i > 0) {  // x decreases, so x̂ must not increase
        ASSERT_LE(x2, prev2);
        ASSERT_LE(xs, prevs);
      }
      prev2 = x2, prevs = xs;
    }
  }
}

TEST(Quantizer, LogSqrt2MatchesTheLog2Form) {
  // 2^(−q/2) = 2^(−⌈q/2⌉)·(1 + (√2−1)·(q mod 2)) within 2 ulp in fp32 (docs/methods.md §6.3 item 11).
  for (int bits = 3; bits <= 8; bits++)
    for (int q = 0; q < std::min(1 << bits, 255); q++) {
      float direct = (float)std::pow(2.0, -q / 2.0), viaLog2 = dq_logsqrt2(q, 1.0f);
      ASSERT_LE(std::fabs(direct - viaLog2), 2 * std::nextafter(direct, INFINITY) - 2 * direct) << q;
    }
}

TEST(Quantizer, DegenerateInputsGiveFiniteParameters) {
  for (Scheme s : {Scheme::sym, Scheme::asym}) {
    QuantSpec q;
    q.scheme = s;
    q.gran = Gran::row;
    std::vector<float> zeros(12, 0.0f), consts(12, 0.75f);
    fit_minmax(zeros.data(), 3, 4, q);
    for (float v : q.scale) EXPECT_TRUE(std::isfinite(v) && v > 0);
    std::vector<float> z = zeros;
    fake_quant(z.data(), 3, 4, q);
    EXPECT_EQ(z, zeros);
    fit_minmax(consts.data(), 3, 4, q);
    for (float v : q.scale) EXPECT_TRUE(std::isfinite(v) && v > 0);
    std::vector<float> c = consts;
    fake_quant(c.data(), 3, 4, q);
    for (float v : c) EXPECT_EQ(v, 0.75f);  // a constant row keeps its value (its range is widened to 0)
  }
  EXPECT_EQ(sym_step(0.0f, 8, 0.0f), 1.0f);
  float step, zero;
  asym_params(0.0f, 0.0f, 8, 0.0f, step, zero);  // all zero: Δ = 1, z = 0
  EXPECT_EQ(step, 1.0f);
  EXPECT_EQ(zero, 0.0f);
  asym_params(1.0f, 1.0f, 8, 1.0f, step, zero);  // a constant: the range [0, c]
  EXPECT_EQ(step * ((float)q_asym(1.0f, step, zero, 8) - zero), 1.0f);
  // The relative floor: a tiny range keeps its own step instead of an absolute 1e-5.
  EXPECT_FLOAT_EQ(sym_step(1e-4f, 8, 1e-4f), 1e-4f / 127);
}

TEST(Quantizer, NaNNeverReachesAnIntegerConversion) {
  EXPECT_EQ(q_sym(NAN, 0.1f, 8), 0);
  EXPECT_EQ(q_asym(NAN, 0.1f, 7.0f, 8), 7);
  EXPECT_EQ(q_sym(INFINITY, 0.1f, 8), 127);
}

TEST(Quantizer, PerRowSymmetricCodesMatchHandComputedGolden) {
  // Row 0: max|w| = 2 → Δ = 2/127; row 1 at 4 bits: max|w| = 0.875 → Δ = 0.125 exactly.
  Tensor w({2, 4});
  w.data = {1.0f, -2.0f, 0.5f, 0.0f, 0.875f, -0.3125f, 0.1875f, 0.0f};
  QuantSpec s;
  s.bits = 8;
  s.gran = Gran::row;
  s = fit_weight(w, s, {});
  std::vector<int32_t> codes(8);
  quantize_codes(w.ptr(), 2, 4, s, codes.data());
  EXPECT_EQ(std::vector<int32_t>(codes.begin(), codes.begin() + 4), (std::vector<int32_t>{64, -127, 32, 0}));
  s.bits = 4;
  s = fit_weight(w, s, {});
  quantize_codes(w.ptr(), 2, 4, s, codes.data());
  // 0.875/0.125 = 7; −0.3125 → −2.5 → −2 (even); 0.1875 → 1.5 → 2 (even)
  EXPECT_EQ(std::vector<int32_t>(codes.begin() + 4, codes.end()), (std::vector<int32_t>{7, -2, 2, 0}));
}

TEST(Quantizer, GroupsAllowAShortLastGroup) {
  auto v = randn(3 * 172, 5);
  QuantSpec s;
  s.bits = 4;
  s.scheme = Scheme::asym;
  s.gran = Gran::group;
  s.group = 64;
  fit_minmax(v.data(), 3, 172, s);
  EXPECT_EQ(s.scale.size(), 9u);  // 64 + 64 + 44 per row
  auto q = v;
  fake_quant(q.data(), 3, 172, s);
  for (int r = 0; r < 3; r++)
    for (int c = 0; c < 172; c++) {
      int64_t p = s.param_index(r, c, 172);
      ASSERT_LE(std::fabs(q[r * 172 + c] - v[r * 172 + c]), s.scale[p] / 2 * 1.0001f);
    }
}

TEST(Quantizer, CodesRoundTripExactlyLikeTheSimulation) {
  auto v = randn(8 * 40, 9);
  for (Scheme sc : {Scheme::sym, Scheme::asym})
    for (Gran g : {Gran::tensor, Gran::row, Gran::group}) {
      QuantSpec s;
      s.bits = 5;
      s.scheme = sc;
      s.gran = g;
      s.group = 16;
      fit_minmax(v.data(), 8, 40, s);
      std::vector<int32_t> codes(v.size());
      std::vector<float> sim = v, back(v.size());
      fake_quant(sim.data(), 8, 40, s);
      quantize_codes(v.data(), 8, 40, s, codes.data());
      dequantize_codes(codes.data(), 8, 40, s, back.data());
      EXPECT_EQ(sim, back);
    }
}

TEST(Calibrator, PercentileOneIsMinMaxAndMseNeverWorse) {
  auto v = randn(50000, 3);
  v[17] = 40.0f;  // one outlier
  Histogram h;
  h.add(v.data(), (int64_t)v.size());
  for (Scheme sc : {Scheme::sym, Scheme::asym}) {
    QuantSpec mm, pc, mse;
    mm.scheme = pc.scheme = mse.scheme = sc;
    calibrate_tensor(h, mm, {Calib::minmax});
    calibrate_tensor(h, pc, {Calib::percentile, 1.0});
    EXPECT_EQ(mm.scale, pc.scale);
    EXPECT_EQ(mm.zero, pc.zero);
    calibrate_tensor(h, mse, {Calib::mse});
    double e_mm = histogram_sq_error(h, mm, mm.scale[0], mm.zero.empty() ? 0 : mm.zero[0]);
    double e_mse = histogram_sq_error(h, mse, mse.scale[0], mse.zero.empty() ? 0 : mse.zero[0]);
    EXPECT_LE(e_mse, e_mm);
    EXPECT_LT(mse.scale[0], mm.scale[0]);  // the outlier is clipped
    // The choice is the best of its own grid.
    for (int i = 0; i < 90; i++) {
      float f = 1 - 0.01f * i, step, zero = 0;
      if (sc == Scheme::asym) {
        asym_params((float)h.min * f, (float)h.max * f, 8, (float)h.amax(), step, zero);
      } else {
        step = sym_step((float)h.amax() * f, 8, (float)h.amax());
      }
      ASSERT_GE(histogram_sq_error(h, mse, step, zero), e_mse * (1 - 1e-12));
    }
  }
}

// An independent transcription of the reference (NVIDIA pytorch-quantization
// _compute_amax_entropy): chunks from linspace/digitize, Q without the tail,
// scipy-style KL with Q floored at 1e-10, the last of equal minima.
static int kl_reference(std::vector<double> bins, int num_bits, bool is_unsigned) {
  bins[0] = bins[1];
  int nbins = 1 << (num_bits - 1 + (is_unsigned ? 1 : 0));
  std::vector<double> div;
  for (int i = 128; i <= (int)bins.size(); i++) {
    std::vector<double> space(nbins + 1);
    for (int k = 0; k <= nbins; k++) space[k] = (double)i * k / nbins;
    std::vector<int> dig(i);
    for (int k = 0; k < i; k++) {
      int idx = 0;
      while (idx + 1 <= nbins && space[idx + 1] <= k) idx++;
      dig[k] = bins[k] == 0 ? -1 : idx;
    }
    std::map<int, double> count, sum;
    for (int k = 0; k < i; k++)
      if (dig[k] >= 0) count[dig[k]] += 1, sum[dig[k]] += bins[k];
    std::vector<double> q(i, 0.0), p(bins.begin(), bins.begin() + i);
    for (int k = 0; k < i; k++)
      if (dig[k] >= 0) q[k] = sum[dig[k]] / count[dig[k]];
    for (size_t k = i; k < bins.size(); k++) p[i - 1] += bins[k];
    double ps = 0, qs = 0, kl = 0;
    for (int k = 0; k < i; k++) ps += p[k], qs += q[k];
    for (int k = 0; k < i; k++)
      if (p[k] > 0) kl += p[k] / ps * std::log((p[k] / ps) / std::max(q[k] / qs, 1e-10));
    div.push_back(kl);
  }
  int best = 0;
  for (int k = 0; k < (int)div.size(); k++)
    if (div[k] <= div[best]) best = k;
  return best + 128;
}

// RepQ-ViT's percentile-MSE (docs/methods.md §1.2): the best of the quantile pairs (1 − p, p),
// p ∈ {0.999, 0.9999, 0.99999}, by squared error; for log quantizers Δ = the quantile p.
TEST(Calibrator, PmseKeepsTheBestOfThreeQuantiles) {
  auto v = randn(50000, 5);
  for (int i = 0; i < 30; i++) v[i * 101] = 12.0f + i;  // a tail the quantiles cut differently
  Histogram h;
  h.add(v.data(), (int64_t)v.size());
  std::vector<float> p(v.size());
  for (size_t i = 0; i < v.size(); i++) p[i] = std::exp(-std::fabs(4 * v[i]));  // softmax-like values in (0, 1]
  Histogram hp;
  hp.add(p.data(), (int64_t)p.size());
  for (Scheme sc : {Scheme::sym, Scheme::asym, Scheme::logsqrt2}) {
    const Histogram& hh = sc == Scheme::logsqrt2 ? hp : h;
    QuantSpec best;
    best.bits = 4, best.scheme = sc;
    calibrate_tensor(hh, best, {Calib::pmse});
    double e_best = histogram_sq_error(hh, best, best.scale[0], best.zero.empty() ? 0 : best.zero[0]), e_min = INFINITY;
    int hits = 0;
    for (double q : {0.999, 0.9999, 0.99999}) {
      QuantSpec c;
      c.bits = 4, c.scheme = sc;
      if (sc == Scheme::logsqrt2) {
        c.scale = {(float)hh.quantile(q)};
      } else {
        calibrate_tensor(hh, c, {Calib::percentile, q});
        if (sc == Scheme::sym) c.scale = {sym_step(std::max(std::fabs((float)hh.quantile(1 - q)), (float)hh.quantile(q)), 4, (float)hh.amax())};
      }
      double e = histogram_sq_error(hh, c, c.scale[0], c.zero.empty() ? 0 : c.zero[0]);
      e_min = std::min(e_min, e);
      hits += c.scale == best.scale && c.zero == best.zero;
    }
    EXPECT_EQ(e_best, e_min) << to_string(sc);
    EXPECT_GE(hits, 1) << to_string(sc);
    EXPECT_EQ(best.calibrator, "pmse");
  }
  QuantSpec l2;
  l2.scheme = Scheme::log2;
  EXPECT_THROW(calibrate_tensor(hp, l2, {Calib::mse}), Error);
}

TEST(Calibrator, KlCutMatchesTheReferenceAlgorithm) {
  Rng r(12);
  for (int trial = 0; trial < 6; trial++) {
    int n = 300 + 150 * trial;
    std::vector<double> h(n);
    for (int k = 0; k < n; k++) {  // a heavy-tailed |x| histogram with gaps
      double x = (k + 0.5) / n * 8;
      h[k] = std::floor(1e5 * std::exp(-x * (1 + 0.3 * trial)) * (0.5 + r.uniform()));
      if (r.below(7) == 0) h[k] = 0;
    }
    h[n - 1] = 3;
    for (bool uns : {false, true})
      EXPECT_EQ(kl_threshold_bin(h, uns ? 256 : 128), kl_reference(h, 8, uns)) << trial << uns;
  }
}

TEST(Calibrator, KlOnUniformDataKeepsNearlyTheWholeRange) {
  Rng r(4);
  std::vector<float> v(200000);
  for (auto& x : v) x = 2 * r.uniform() - 1;
  Histogram h;
  h.add(v.data(), (int64_t)v.size());
  QuantSpec s;
  calibrate_tensor(h, s, {Calib::kl});
  EXPECT_NEAR(s.scale[0] * 127, h.amax(), 2 * h.width);
}

TEST(Plan, JsonRoundTrips) {
  QuantPlan p;
  QuantSpec a;
  a.bits = 6, a.scheme = Scheme::asym, a.gran = Gran::group, a.group = 32;
  a.scale = {0.5f, 0.25f}, a.zero = {3, 4}, a.calibrator = "mse";
  QuantSpec b;
  b.bits = 8, b.dynamic = true, b.gran = Gran::row, b.pre_inv = {1, 2}, b.pre_shift = {0.5f, -1};
  p.weights["blk.0.attn_q.weight"] = a;
  p.sites["blk.0.qkv_in"] = b;
  p.passes.push_back({{"pass", "rtn"}, {"w_bits", 6}});
  nlohmann::json doc = nlohmann::json::parse(p.to_json(true).dump());
  QuantPlan q = QuantPlan::from_json(JsonAt(doc, "plan"));
  EXPECT_EQ(q.to_json(true), p.to_json(true));
  EXPECT_EQ(q.weights["blk.0.attn_q.weight"].scale, a.scale);
  EXPECT_EQ(q.sites["blk.0.qkv_in"].pre_shift, b.pre_shift);
}

}  // namespace tq

namespace tq {

// A spec travels between ranks as doubles: every field comes back exactly, and two specs
// packed one after the other are read back in turn.
TEST(Quantizer, SpecTravelsAsDoublesExactly) {
  QuantSpec a;
  a.bits = 3;
  a.scheme = Scheme::asym;
  a.gran = Gran::group;
  a.group = 64;
  a.dynamic = true;
  a.scale = {1e-38f, 0.1f, 3.4e38f};
  a.zero = {0.5f, -7.25f, 3};
  a.pre_inv = {2.0f / 3};
  a.pre_shift = {-1e-7f, 5};
  a.calibrator = "hqq";
  QuantSpec b;
  b.scheme = Scheme::logsqrt2;
  std::vector<double> v;
  append_doubles(a, v);
  append_doubles(b, v);
  const double* at = v.data();
  for (const QuantSpec* want : {&a, &b}) {
    QuantSpec got = spec_from_doubles(at, v.data() + v.size());
    EXPECT_EQ(spec_to_json(got), spec_to_json(*want));
    EXPECT_EQ(got.dynamic, want->dynamic);
    EXPECT_EQ(got.pre_inv, want->pre_inv);
    EXPECT_EQ(got.pre_shift, want->pre_shift);
    EXPECT_EQ(got.scale, want->scale);
    EXPECT_EQ(got.zero, want->zero);
  }
  EXPECT_EQ(at, v.data() + v.size());
  const double* short_at = v.data();
  EXPECT_THROW(spec_from_doubles(short_at, v.data() + 8), Error);  // cut inside the scales
}

}  // namespace tq
