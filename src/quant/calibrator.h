// Calibrators: choose a quantizer's range from a histogram of the data
// (docs/methods.md §5.1–5.4).
//   minmax      the observed extremes
//   percentile  quantiles p and 1 − p (sym: quantile p of |x|)
//   mse         the shrink of the min-max range (1 − 0.01·i, i = 0..89) with the least squared error (OMSE)
//   kl          TensorRT's entropy calibration (symmetric threshold)
//   pmse        RepQ-ViT's percentile-MSE: the quantile pair (1 − p, p), p ∈ {0.999, 0.9999,
//               0.99999}, with the least squared error (docs/methods.md §1.2); log quantizers: Δ = quantile p
#pragma once
#include <string>

#include "quant/histogram.h"
#include "quant/quantizer.h"

namespace tq {

enum class Calib { minmax, percentile, mse, kl, pmse };
Calib calib_from_string(const std::string& s);
const char* to_string(Calib c);

struct CalibOptions {
  Calib method = Calib::minmax;
  double percentile = 0.9999;
};

// Sets spec.scale (and zero) for a per-tensor quantizer of the data in h (uniform; log2 and
// log√2 only with pmse).
void calibrate_tensor(const Histogram& h, QuantSpec& spec, const CalibOptions& opt);

// The KL cut: index i (128 ≤ i ≤ bins) of the threshold edge on an |x| histogram,
// following the NVIDIA pytorch-quantization reference; levels is 2^(b−1) (signed) or 2^b (unsigned).
int kl_threshold_bin(std::vector<double> hist, int levels);

// Squared quantization error of the data in h under (step, zero) of spec's scheme and bits
// (every scheme; log schemes ignore zero).
double histogram_sq_error(const Histogram& h, const QuantSpec& spec, float step, float zero);

}  // namespace tq
