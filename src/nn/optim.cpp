#include "nn/optim.h"

#include <cmath>

#include "nn/forward.h"

namespace tq {

AdamState adam_state(const Model& params) { return AdamState{zeros_like(params), zeros_like(params), 0}; }

void adamw_update(Model& params, const Model& grads, AdamState& st, const AdamW& opt, float lr) {
  st.step++;
  const double c1 = 1.0 - std::pow((double)opt.beta1, (double)st.step);
  const double c2 = 1.0 - std::pow((double)opt.beta2, (double)st.step);
  auto p = named_tensors(params);
  auto g = named_tensors(const_cast<Model&>(grads));
  auto m = named_tensors(st.m), v = named_tensors(st.v);
  for (size_t i = 0; i < p.size(); i++) {
    float* w = p[i].t->ptr();
    const float* gi = g[i].t->ptr();
    float *mi = m[i].t->ptr(), *vi = v[i].t->ptr();
    const float wd = p[i].t->ndim() >= 2 ? opt.weight_decay : 0.0f;
    const int64_t n = p[i].t->numel();
#pragma omp parallel for schedule(static) if (n > (1 << 15))
    for (int64_t j = 0; j < n; j++) {
      mi[j] = opt.beta1 * mi[j] + (1 - opt.beta1) * gi[j];
      vi[j] = opt.beta2 * vi[j] + (1 - opt.beta2) * gi[j] * gi[j];
      float mh = (float)(mi[j] / c1), vh = (float)(vi[j] / c2);
      w[j] -= lr * (mh / (std::sqrt(vh) + opt.eps) + wd * w[j]);
    }
  }
}

double grad_norm(const Model& grads) {
  double ss = 0;
  for (auto& nt : named_tensors(const_cast<Model&>(grads)))
    for (float x : nt.t->data) ss += (double)x * x;
  return std::sqrt(ss);
}

double clip_grad_norm(Model& grads, double max_norm) {
  double norm = grad_norm(grads);
  if (max_norm > 0 && norm > max_norm) {
    float s = (float)(max_norm / norm);
    for (auto& nt : named_tensors(grads))
      for (float& x : nt.t->data) x *= s;
  }
  return norm;
}

float lr_at(const Schedule& s, int64_t step) {
  if (step < s.warmup) return s.lr * (float)(step + 1) / (float)s.warmup;
  if (step >= s.total) return s.min_lr;
  double t = (double)(step - s.warmup) / (double)std::max<int64_t>(1, s.total - s.warmup);
  return (float)(s.min_lr + 0.5 * (s.lr - s.min_lr) * (1 + std::cos(M_PI * t)));
}

}  // namespace tq
