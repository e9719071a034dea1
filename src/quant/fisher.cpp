#include "quant/fisher.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"

namespace tq {

Fisher fisher_diag(const Model& m, const std::vector<Batch>& calib, const FisherOptions& opt, Hooks& hooks) {
  Fisher out;
  Model grads = zeros_like(m);
  for (auto& nt : named_tensors(grads))
    if (nt.t->ndim() == 2) out.f[nt.name] = Tensor(nt.t->shape);
  const size_t nb = opt.batches > 0 ? std::min(calib.size(), (size_t)opt.batches) : calib.size();
  Rng rng(opt.seed ^ 0x46495348u);
  Workspace ws;
  ws.train = true;
  std::vector<float> dlogits;
  Progress prog("fisher", (int64_t)nb, "batch");
  for (size_t b = 0; b < nb; b++) {
    const Input in = calib[b].input();
    forward(m, in, ws, hooks);
    const int rows = (int)ws.logits.dim(0), V = (int)ws.logits.dim(1);
    dlogits.assign((size_t)rows * V, 0.0f);
    for (int r = 0; r < rows; r++) {  // d(−log p(ŷ))/dz = p − onehot(ŷ), ŷ ~ p
      const float* z = ws.logits.row(r);
      float* d = &dlogits[(size_t)r * V];
      double mx = *std::max_element(z, z + V), sum = 0;
      for (int v = 0; v < V; v++) sum += std::exp((double)z[v] - mx);
      double u = rng.uniform_f64() * sum, acc = 0;
      int pick = V - 1;
      for (int v = 0; v < V; v++) {
        double e = std::exp((double)z[v] - mx);
        d[v] = (float)(e / sum);
        acc += e;
        if (pick == V - 1 && acc > u) pick = v;
      }
      d[pick] -= 1.0f;
    }
    for (auto& nt : named_tensors(grads)) std::fill(nt.t->data.begin(), nt.t->data.end(), 0.0f);
    backward(m, grads, in, ws, dlogits.data(), hooks);
    for (auto& nt : named_tensors(grads)) {
      auto it = out.f.find(nt.name);
      if (it == out.f.end()) continue;
      float* f = it->second.ptr();
      const float* g = nt.t->ptr();
      for (int64_t i = 0; i < nt.t->numel(); i++) f[i] += g[i] * g[i];
    }
    out.positions += rows;
    prog.add();
  }
  if (out.positions == 0) bad_input("the Fisher estimate needs calibration data");
  for (auto& [name, t] : out.f)
    for (float& v : t.data) v = (float)((double)v / (double)out.positions);
  return out;
}

std::vector<double> fisher_row_weights(const Tensor& f, const std::vector<float>& h) {
  if ((int64_t)h.size() != f.cols()) run_failed("Fisher row weights: {} input moments for {} columns", h.size(), f.cols());
  double hh = 0;
  for (float v : h) hh += (double)v * v;
  std::vector<double> phi(f.rows(), 0.0);
  for (int64_t o = 0; o < f.rows(); o++) {
    double s = 0;
    for (int64_t j = 0; j < f.cols(); j++) s += (double)f.row(o)[j] * h[j];
    phi[o] = hh > 0 ? s / hh : 0.0;
  }
  return phi;
}

}  // namespace tq
