#include "quant/fisher.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/threads.h"

namespace tq {

namespace {

// d(−log p(ŷ))/dz = p − onehot(ŷ) for every row, ŷ drawn from p.
void sampled_dlogits(const Tensor& logits, Rng& rng, std::vector<float>& dlogits) {
  const int rows = (int)logits.dim(0), V = (int)logits.dim(1);
  dlogits.assign((size_t)rows * V, 0.0f);
  for (int r = 0; r < rows; r++) {
    const float* z = logits.row(r);
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
}

}  // namespace

Fisher fisher_diag(const Model& m, const std::vector<Batch>& calib, const FisherOptions& opt,
                   HessianObserver* hessians) {
  Fisher out;
  for (auto& nt : named_tensors(const_cast<Model&>(m)))
    if (nt.t->ndim() == 2) out.f[nt.name] = Tensor(nt.t->shape);
  const int64_t nf = opt.batches > 0 ? std::min<int64_t>((int64_t)calib.size(), opt.batches) : (int64_t)calib.size();
  const int64_t nb = hessians ? (int64_t)calib.size() : nf;  // batches past nf: forward only, for the Hessians
  const int slots = std::max(1, std::min<int>(num_threads(), (int)nb));
  // Per slot: the batch's squared gradients, its positions and its Hessians, merged in batch order.
  struct Slot {
    Model grads;
    Workspace ws;
    HessianObserver obs;
    int64_t positions = 0;
    bool backward = false;
  };
  std::vector<Slot> slot(slots);
  for (Slot& s : slot) {
    s.grads = zeros_like(m);
    s.ws.train = true;
    if (hessians) s.obs.sites = hessians->sites, s.obs.layer = hessians->layer;
  }
  Progress prog("fisher", nb, "batch");
  SerialBlas serial;
  for (int64_t b0 = 0; b0 < nb; b0 += slots) {
    const int n = (int)std::min<int64_t>(slots, nb - b0);
#pragma omp parallel for schedule(static, 1) num_threads(n) if (n > 1)
    for (int k = 0; k < n; k++) {
      Slot& s = slot[k];
      const Batch& batch = calib[b0 + k];
      Rng rng(opt.seed * 0x9E3779B97F4A7C15ull + (uint64_t)(b0 + k) + 1);
      std::vector<float> dlogits;
      s.obs.h.clear();
      s.backward = b0 + k < nf;
      s.ws.train = s.backward;
      forward(m, batch.input(), s.ws, hessians ? (Hooks&)s.obs : no_hooks());
#pragma omp critical
      prog.add();
      if (!s.backward) continue;
      sampled_dlogits(s.ws.logits, rng, dlogits);
      s.positions = (int64_t)s.ws.logits.dim(0);
      for (auto& nt : named_tensors(s.grads)) std::fill(nt.t->data.begin(), nt.t->data.end(), 0.0f);
      backward(m, s.grads, batch.input(), s.ws, dlogits.data());
      for (auto& nt : named_tensors(s.grads))
        if (nt.t->ndim() == 2)
          for (float& g : nt.t->data) g = g * g;
    }
    for (int k = 0; k < n; k++) {
      Slot& s = slot[k];
      if (hessians)
        for (auto& [key, h] : s.obs.h) hessians->h[key].merge(h);
      if (!s.backward) continue;
      for (auto& nt : named_tensors(s.grads)) {
        auto it = out.f.find(nt.name);
        if (it == out.f.end()) continue;
        float* f = it->second.ptr();
        const float* g2 = nt.t->ptr();
        for (int64_t i = 0; i < nt.t->numel(); i++) f[i] += g2[i];
      }
      out.positions += s.positions;
    }
  }
  prog.finish();
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
