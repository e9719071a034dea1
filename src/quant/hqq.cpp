#include "quant/hqq.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/parallel.h"

namespace tq {

void hqq_init(const float* w, int n, int bits, float& step, float& zero) {
  float mn = INFINITY, mx = -INFINITY;
  for (int i = 0; i < n; i++) {
    if (!std::isfinite(w[i])) bad_input("cannot quantize a tensor holding {}", w[i]);
    mn = std::min(mn, w[i]);
    mx = std::max(mx, w[i]);
  }
  // A constant group gives Qa/0 = inf, clamped like HQQ's fp16 guard.
  float s = std::min((float)((1 << bits) - 1) / (mx - mn), 2e4f);
  step = 1.0f / s;
  zero = -mn * s;
  if (bits == 4) zero = std::rint(zero);
}

float hqq_zero_update(const float* w, int n, int bits, float step, float zero, float beta, float p) {
  double sum = 0;
  for (int i = 0; i < n; i++) {
    float q = (float)q_asym(w[i], step, zero, bits);
    float e = w[i] - step * (q - zero);
    float a = std::fabs(e);
    // |e|^(p−1) is infinite at e = 0, where the shrinkage is 0 anyway.
    float shrunk = a > 0 ? std::max(a - std::pow(a, p - 1.0f) / beta, 0.0f) : 0.0f;
    float we = std::copysign(shrunk, e);
    sum += (double)q - (double)(w[i] - we) / step;
  }
  return (float)(sum / n);
}

double hqq_group_error(const float* w, int n, int bits, float step, float zero) {
  double e = 0;
  for (int i = 0; i < n; i++) e += std::fabs(w[i] - step * ((float)q_asym(w[i], step, zero, bits) - zero));
  return e / n;
}

void hqq_group(const float* w, int n, int bits, const HqqOptions& opt, float& step, float& zero) {
  hqq_init(w, n, bits, step, zero);
  float z = zero, beta = opt.beta0;
  double best = INFINITY;
  for (int it = 0;; it++) {
    double e = hqq_group_error(w, n, bits, step, z);
    if (!(e < best)) break;  // early stop: no improvement on the best so far
    best = e;
    zero = z;
    if (it == opt.iters) break;
    z = hqq_zero_update(w, n, bits, step, z, beta, opt.p);
    beta *= opt.kappa;
  }
}

QuantSpec hqq_fit(const Tensor& w, int bits, int group, const HqqOptions& opt) {
  TQ_CHECK_INPUT(w.ndim() == 2, "weights to quantize must be matrices, got {}", shape_str(w.shape));
  TQ_CHECK_INPUT(bits >= 1 && bits <= 8 && group >= 1, "HQQ needs 1..8 bits and a positive group, got b{}g{}", bits,
                 group);
  QuantSpec s;
  s.bits = bits;
  s.scheme = Scheme::asym;
  s.gran = Gran::group;
  s.group = group;
  s.calibrator = "hqq";
  const int rows = (int)w.dim(0), cols = (int)w.dim(1), per_row = (cols + group - 1) / group;
  int64_t np = s.n_params(rows, cols);
  s.scale.assign(np, 1.0f);
  s.zero.assign(np, 0.0f);
  parallel_for(
      rows,
      [&](int64_t r) {
        for (int g = 0; g < per_row; g++) {
          int c0 = g * group, n = std::min(group, cols - c0);
          int64_t p = r * per_row + g;
          hqq_group(w.row(r) + c0, n, bits, opt, s.scale[p], s.zero[p]);
        }
      },
      16, (int64_t)rows * cols > 32768);
  return s;
}

std::string Rung::name() const { return fmt::format("b{}g{}", bits, group); }

const std::vector<Rung>& hqq_ladder() {
  static const std::vector<Rung> ladder = [] {
    std::vector<Rung> l;
    for (int b : {2, 3, 4, 8})
      for (int g : {128, 64, 32}) l.push_back({b, g});
    std::stable_sort(l.begin(), l.end(), [](const Rung& a, const Rung& b) { return bpp_hqq(a) < bpp_hqq(b); });
    return l;
  }();
  return ladder;
}

int ladder_index(const std::string& name) {
  std::string names;
  for (size_t i = 0; i < hqq_ladder().size(); i++) {
    if (hqq_ladder()[i].name() == name) return (int)i;
    names += (names.empty() ? "" : ", ") + hqq_ladder()[i].name();
  }
  bad_input("unknown HQQ configuration '{}' (the ladder: {})", name, names);
}

double bpp_hqq(const Rung& r, int64_t rows, int64_t cols) {
  double groups = (double)rows * ((cols + r.group - 1) / r.group);
  return r.bits + groups * (2 * 8 + 32.0 / 128) / ((double)rows * cols);
}
double bpp_ours(const Rung& r, int64_t rows, int64_t cols) {
  double groups = (double)rows * ((cols + r.group - 1) / r.group);
  return r.bits + groups * 32.0 / ((double)rows * cols);
}
double bpp_hqq(const Rung& r) { return bpp_hqq(r, 1, r.group); }
double bpp_ours(const Rung& r) { return bpp_ours(r, 1, r.group); }

}  // namespace tq
