#include "nn/optim.h"

#include <cmath>

#include "nn/forward.h"

namespace tq {

AdamState adam_state(const Model& params) { return AdamState{zeros_like(params), zeros_like(params), 0}; }

template <class T>
void adam_step(T* p, const T* g, T* m, T* v, int64_t n, const Adam<T>& opt, int64_t step, T lr, T wd) {
  const double c1 = 1.0 - std::pow((double)opt.beta1, (double)step);
  const double c2 = 1.0 - std::pow((double)opt.beta2, (double)step);
#pragma omp parallel for schedule(static) if (n > (1 << 15))
  for (int64_t j = 0; j < n; j++) {
    m[j] = opt.beta1 * m[j] + (1 - opt.beta1) * g[j];
    v[j] = opt.beta2 * v[j] + (1 - opt.beta2) * g[j] * g[j];
    T mh = (T)(m[j] / c1), vh = (T)(v[j] / c2);
    p[j] -= lr * (mh / (std::sqrt(vh) + opt.eps) + wd * p[j]);
  }
}
template void adam_step(float*, const float*, float*, float*, int64_t, const Adam<float>&, int64_t, float, float);
template void adam_step(double*, const double*, double*, double*, int64_t, const Adam<double>&, int64_t, double,
                        double);

template <class T>
void AdamVector<T>::update(std::vector<T>& p, const std::vector<T>& g, const Adam<T>& opt, T lr) {
  if (m.empty()) m.assign(p.size(), 0), v.assign(p.size(), 0);
  adam_step(p.data(), g.data(), m.data(), v.data(), (int64_t)p.size(), opt, ++step, lr, opt.weight_decay);
}
template struct AdamVector<float>;
template struct AdamVector<double>;

void adamw_update(Model& params, const Model& grads, AdamState& st, const AdamW& opt, float lr) {
  st.step++;
  auto p = named_tensors(params);
  auto g = named_tensors(const_cast<Model&>(grads));
  auto m = named_tensors(st.m), v = named_tensors(st.v);
  for (size_t i = 0; i < p.size(); i++) {
    const float wd = p[i].t->ndim() >= 2 ? opt.weight_decay : 0.0f;
    adam_step(p[i].t->ptr(), g[i].t->ptr(), m[i].t->ptr(), v[i].t->ptr(), p[i].t->numel(), opt, st.step, lr, wd);
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
