// Comparing a model's output distributions with a reference model's: the
// per-row KL divergence and its summaries, shared by every evaluation.
#pragma once
#include <vector>

namespace tq {

// KL(P_ref ‖ P) = Σ p_ref · (log p_ref − log p) from log-probabilities; never negative.
double kl_logprobs(const double* log_p_ref, const double* log_p, int V);
double mean_of(const std::vector<float>& v);
double p99_of(std::vector<float> v);  // the 99th percentile (nearest rank); 0 when empty

}  // namespace tq
