#include "quant/weights.h"

#include <cmath>

#include "core/error.h"

namespace tq {

QuantSpec fit_weight(const Tensor& w, QuantSpec spec, const CalibOptions& opt) {
  TQ_CHECK_INPUT(w.ndim() == 2, "weights to quantize must be matrices, got {}", shape_str(w.shape));
  const int rows = (int)w.dim(0), cols = (int)w.dim(1);
  if (spec.gran == Gran::col) bad_input("weights are quantized per row, group or tensor, not per column");
  if (opt.method == Calib::minmax) {
    fit_minmax(w.ptr(), rows, cols, spec);
    return spec;
  }
  // Each parameter's slice of values gets its own histogram and calibrator.
  int64_t np = spec.n_params(rows, cols);
  std::vector<Histogram> hs(np);
  for (int r = 0; r < rows; r++) {
    if (spec.gran == Gran::group) {
      for (int c0 = 0; c0 < cols; c0 += spec.group)
        hs[spec.param_index(r, c0, cols)].add(w.row(r) + c0, std::min(spec.group, cols - c0));
    } else {
      hs[spec.param_index(r, 0, cols)].add(w.row(r), cols);
    }
  }
  spec.scale.assign(np, 1.0f);
  spec.zero.assign(spec.scheme == Scheme::asym ? np : 0, 0.0f);
  for (int64_t p = 0; p < np; p++) {
    QuantSpec one = spec;
    calibrate_tensor(hs[p], one, opt);
    spec.scale[p] = one.scale[0];
    if (spec.scheme == Scheme::asym) spec.zero[p] = one.zero[0];
  }
  spec.calibrator = to_string(opt.method);
  return spec;
}

double sqnr_db(const float* x, const float* xq, int64_t n) {
  double s = 0, e = 0;
  for (int64_t i = 0; i < n; i++) {
    s += (double)x[i] * x[i];
    e += ((double)x[i] - xq[i]) * ((double)x[i] - xq[i]);
  }
  if (e == 0) return INFINITY;
  return 10.0 * std::log10(s / e);
}

}  // namespace tq
