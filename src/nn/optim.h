// AdamW over the named tensors of a model, its learning-rate schedule and
// global gradient-norm clipping. Element-wise loops and fixed-order sums, so
// that an update is the same bits on every run with the same thread count.
#pragma once
#include <cstdint>
#include <vector>

#include "nn/model.h"

namespace tq {

// Adam with decoupled weight decay, in the precision of the parameters it updates.
template <class T>
struct Adam {
  T beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  T weight_decay = 0;  // decoupled; the model update applies it to matrices only (not to norms, biases, vectors)
};
using AdamW = Adam<float>;  // the trainer's: float moments beside the f32 model

// The one Adam update, of n parameters at update number `step` (from 1): bias-corrected
// moments, p ← p − lr·(m̂/(√v̂ + eps) + wd·p). Element-wise, so any thread count gives the same bits.
template <class T>
void adam_step(T* p, const T* g, T* m, T* v, int64_t n, const Adam<T>& opt, int64_t step, T lr, T wd);

// The moments of one parameter vector (a pass's learnable vectors: clipping logits, rounding variables).
template <class T>
struct AdamVector {
  std::vector<T> m, v;
  int64_t step = 0;
  void update(std::vector<T>& p, const std::vector<T>& g, const Adam<T>& opt, T lr);
};

// The moments have the shapes of the parameters; step counts the updates done.
struct AdamState {
  Model m, v;
  int64_t step = 0;
};
AdamState adam_state(const Model& params);

// One update: bias-corrected moments, θ ← θ − lr·(m̂/(√v̂ + eps) + wd·θ).
void adamw_update(Model& params, const Model& grads, AdamState& st, const AdamW& opt, float lr);

// √Σ g² over every gradient, summed in double in a fixed order.
double grad_norm(const Model& grads);
// Scales the gradients so that their global norm is at most max_norm (if max_norm > 0);
// returns the norm before clipping.
double clip_grad_norm(Model& grads, double max_norm);

// Linear warm-up from 0 to lr over `warmup` updates, then cosine decay to min_lr at `total`.
struct Schedule {
  float lr = 1e-3f, min_lr = 0.0f;
  int64_t warmup = 0, total = 1;
};
float lr_at(const Schedule& s, int64_t step);

}  // namespace tq
