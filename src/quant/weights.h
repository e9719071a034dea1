// Weight quantizer parameters from the weights themselves.
#pragma once
#include "core/tensor.h"
#include "quant/calibrator.h"
#include "quant/quantizer.h"

namespace tq {

// Parameters for w [out, in] under spec's bits/scheme/granularity: min-max per
// row/group/tensor, or another calibrator applied to each row's (group's) values.
QuantSpec fit_weight(const Tensor& w, QuantSpec spec, const CalibOptions& opt);

// Signal-to-quantization-noise ratio in dB: 10·log10(Σx² / Σ(x − x̂)²).
double sqnr_db(const float* x, const float* xq, int64_t n);

}  // namespace tq
