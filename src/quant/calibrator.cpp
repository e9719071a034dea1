#include "quant/calibrator.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace tq {

Calib calib_from_string(const std::string& s) {
  for (Calib c : {Calib::minmax, Calib::percentile, Calib::mse, Calib::kl, Calib::pmse})
    if (s == to_string(c)) return c;
  bad_input("unknown calibrator '{}' (minmax, percentile, mse, kl, pmse)", s);
}

const char* to_string(Calib c) {
  switch (c) {
    case Calib::minmax: return "minmax";
    case Calib::percentile: return "percentile";
    case Calib::mse: return "mse";
    case Calib::kl: return "kl";
    case Calib::pmse: return "pmse";
  }
  return "?";
}

double histogram_sq_error(const Histogram& h, const QuantSpec& spec, float step, float zero) {
  double err = 0;
  h.for_each_bin([&](double centre, double n) {
    float x = (float)centre, xq;
    switch (spec.scheme) {
      case Scheme::asym: xq = step * ((float)q_asym(x, step, zero, spec.bits) - zero); break;
      case Scheme::sym: xq = step * (float)q_sym(x, step, spec.bits); break;
      case Scheme::log2: xq = dq_log2(q_log2(x, step, spec.bits), step); break;
      case Scheme::logsqrt2: xq = dq_logsqrt2(q_logsqrt2(x, step, spec.bits), step); break;
    }
    err += n * ((double)x - xq) * ((double)x - xq);
  });
  return err;
}

int kl_threshold_bin(std::vector<double> hist, int levels) {
  int nbins = (int)hist.size();
  if (nbins < 128) return nbins;  // too few bins to cut: keep the whole range
  hist[0] = hist[1];              // the spike of exact zeros would dominate otherwise
  double best = INFINITY;
  int best_i = nbins;
  for (int i = 128; i <= nbins; i++) {
    // Reference P: the first i bins, with everything beyond folded into the last one.
    std::vector<double> p(hist.begin(), hist.begin() + i);
    for (int k = i; k < nbins; k++) p[i - 1] += hist[k];
    // Candidate Q: bin k of the first i (without the tail) belongs to chunk ⌊k·levels/i⌋;
    // each chunk's total is spread evenly over its non-empty bins.
    std::vector<double> total(levels, 0.0), nonzero(levels, 0.0), q(i, 0.0);
    for (int k = 0; k < i; k++) {
      int j = (int)((int64_t)k * levels / i);
      total[j] += hist[k];
      nonzero[j] += hist[k] != 0;
    }
    for (int k = 0; k < i; k++) {
      int j = (int)((int64_t)k * levels / i);
      if (hist[k] != 0) q[k] = total[j] / nonzero[j];
    }
    double ps = 0, qs = 0;
    for (int k = 0; k < i; k++) ps += p[k], qs += q[k];
    if (ps <= 0 || qs <= 0) continue;
    double kl = 0;
    for (int k = 0; k < i; k++) {
      if (p[k] <= 0) continue;
      double pk = p[k] / ps, qk = std::max(q[k] / qs, 1e-10);
      kl += pk * std::log(pk / qk);
    }
    if (kl <= best) {  // the reference keeps the last of equal minima
      best = kl;
      best_i = i;
    }
  }
  return best_i;
}

void calibrate_tensor(const Histogram& h, QuantSpec& s, const CalibOptions& opt) {
  const bool log = s.scheme == Scheme::log2 || s.scheme == Scheme::logsqrt2;
  TQ_CHECK_INPUT(!log || opt.method == Calib::pmse, "log quantizers are calibrated by pmse");
  if (h.nonfinite) run_failed("calibration data hold {} non-finite values", h.nonfinite);
  s.gran = Gran::tensor;
  s.scale.assign(1, 1.0f);
  s.zero.assign(s.scheme == Scheme::asym ? 1 : 0, 0.0f);
  s.calibrator = to_string(opt.method);
  if (h.count == 0) return;  // nothing seen: the degenerate Δ = 1, z = 0
  float amax = (float)h.amax(), lo = (float)h.min, hi = (float)h.max;
  auto set = [&](float l, float u) {  // from a range [l, u]
    if (s.scheme == Scheme::asym) {
      asym_params(l, u, s.bits, amax, s.scale[0], s.zero[0]);
    } else {
      s.scale[0] = sym_step(std::max(std::fabs(l), std::fabs(u)), s.bits, amax);
    }
  };
  switch (opt.method) {
    case Calib::minmax: set(lo, hi); break;
    case Calib::percentile: {
      double p = opt.percentile;
      if (s.scheme == Scheme::asym) {
        set((float)h.quantile(1 - p), (float)h.quantile(p));
      } else {
        float t = (float)h.abs_quantile(p);
        set(-t, t);
      }
      break;
    }
    case Calib::mse: {
      double best = INFINITY;
      float bl = lo, bu = hi;
      for (int i = 0; i < 90; i++) {
        float f = 1.0f - 0.01f * i, l = lo * f, u = hi * f, step, zero = 0;
        if (s.scheme == Scheme::asym) {
          asym_params(l, u, s.bits, amax, step, zero);
        } else {
          step = sym_step(amax * f, s.bits, amax);
        }
        double e = histogram_sq_error(h, s, step, zero);
        if (e < best) best = e, bl = l, bu = u;
      }
      if (s.scheme == Scheme::asym) {
        set(bl, bu);
      } else {
        float t = std::max(std::fabs(bl), std::fabs(bu));
        set(-t, t);
      }
      break;
    }
    case Calib::kl: {
      bool unsigned_data = lo >= 0;
      int levels = unsigned_data ? (1 << s.bits) : (1 << (s.bits - 1));
      int i = kl_threshold_bin(h.abs_counts(), levels);
      float t = std::min((float)(i * h.width), amax);
      set(unsigned_data ? 0.0f : -t, t);
      break;
    }
    case Calib::pmse: {
      double best = INFINITY;
      float bl = lo, bu = hi;
      for (double p : {0.999, 0.9999, 0.99999}) {
        float l = log ? 0.0f : (float)h.quantile(1 - p), u = (float)h.quantile(p), step, zero = 0;
        if (log) {
          step = u > 0 ? u : 1.0f;  // the top level Δ·2^0 sits at the quantile
        } else if (s.scheme == Scheme::asym) {
          asym_params(l, u, s.bits, amax, step, zero);
        } else {
          step = sym_step(std::max(std::fabs(l), std::fabs(u)), s.bits, amax);
        }
        double e = histogram_sq_error(h, s, step, zero);
        if (e < best) best = e, bl = l, bu = u;
      }
      if (log) {
        s.scale[0] = bu > 0 ? bu : 1.0f;
      } else {
        set(bl, bu);
      }
      break;
    }
  }
}

}  // namespace tq
