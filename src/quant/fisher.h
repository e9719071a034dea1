// The diagonal Fisher information of the model's output distribution with
// respect to its weight matrices, the second-order term of the output KL:
//   KL(p_θ ‖ p_{θ+δ}) ≈ ½ Σ_i F_i δ_i²   (per scored position, averaged)
// estimated from calibration batches with labels drawn from the model itself
// (seeded): F = (1/N) Σ_batches (Σ_t ∇_θ log p(ŷ_t))², N the scored positions.
// With sampled labels the cross-position terms of each square have mean zero, so
// the estimate is unbiased. The budget allocator turns it into per-output-row
// weights of each linear's layer-wise error (methods-gptq-awq.md §5.14).
#pragma once
#include <map>
#include <string>

#include "nn/forward.h"
#include "quant/hessian.h"

namespace tq {

struct FisherOptions {
  uint64_t seed = 0;
  int batches = 0;  // calibration batches with a backward pass (0: all); the Hessians use every batch
};

// F per 2-D weight (by name) and the number of scored positions. With `hessians`, the same
// forward passes also gather its sites' Hessians (the allocator needs both). Batches run in
// parallel with single-threaded BLAS, each with its own seeded labels, and merge in batch
// order: the same bits for any thread count.
struct Fisher {
  std::map<std::string, Tensor> f;
  int64_t positions = 0;
};
Fisher fisher_diag(const Model& m, const std::vector<Batch>& calib, const FisherOptions& opt = {},
                   HessianObserver* hessians = nullptr);

// φ_o, the weight of output row o in the layer-wise error, from F ≈ φ ⊗ h (the Kronecker form
// with h_j = E[x_j²] of the linear's input): φ_o = Σ_j F_oj h_j / Σ_j h_j². Then
// KL ≈ ½ Σ_o φ_o (w_o − ŵ_o) E[x xᵀ] (w_o − ŵ_o)ᵀ keeps the correlations GPTQ exploits.
std::vector<double> fisher_row_weights(const Tensor& f, const std::vector<float>& mean_square);

}  // namespace tq
