// Calibrators: choose a quantizer's range from a histogram of the data
// (methods.md §5.1–5.4).
//   minmax      the observed extremes
//   percentile  quantiles p and 1 − p (sym: quantile p of |x|)
//   mse         the shrink of the min-max range (1 − 0.01·i, i = 0..89) with the least squared error (OMSE)
//   kl          TensorRT's entropy calibration (symmetric threshold)
#pragma once
#include <string>

#include "quant/histogram.h"
#include "quant/quantizer.h"

namespace tq {

enum class Calib { minmax, percentile, mse, kl };
Calib calib_from_string(const std::string& s);
const char* to_string(Calib c);

struct CalibOptions {
  Calib method = Calib::minmax;
  double percentile = 0.9999;
};

// Sets spec.scale (and zero) for a per-tensor uniform quantizer of the data in h.
void calibrate_tensor(const Histogram& h, QuantSpec& spec, const CalibOptions& opt);

// The KL cut: index i (128 ≤ i ≤ bins) of the threshold edge on an |x| histogram,
// following the NVIDIA pytorch-quantization reference; levels is 2^(b−1) (signed) or 2^b (unsigned).
int kl_threshold_bin(std::vector<double> hist, int levels);

// Squared quantization error of the data in h under (step, zero) of spec's scheme and bits.
double histogram_sq_error(const Histogram& h, const QuantSpec& spec, float step, float zero);

}  // namespace tq
