// AWQ (Lin et al., MLSys 2024; methods-gptq-awq.md §5.7): activation-aware
// per-channel scales. Channels whose activations are large carry the output, so
// their weights are scaled up before rounding (and the activation down by the
// same factor), which shrinks their relative rounding error. The scale is
// searched per site on a one-parameter family σ = x̄^α and folded into the
// producer with the exact site fold (passes/site_scale.h), so the quantized
// model is an ordinary one.
//
// The search scores a candidate by the readers' layer-wise output error
// Σ_o ρ_o ΔW_o H ΔW_oᵀ/N from the site's Hessian (no forward passes), optionally
// with each output row weighted by how much of its error reaches the model's
// output (ρ; the budget allocator passes its Fisher weights): block-local, given
// that block's input statistics, so the streaming pipeline can run it per block.
#pragma once
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/forward.h"
#include "quant/hessian.h"
#include "quant/plan.h"

namespace tq {

// The weight quantizer AWQ scores with: a reader's name ("blk.3.attn_q.weight"), its weight as
// scaled, and its columns' importance (mean x² of the scaled input) → the rounded weight.
using AwqQuantizer = std::function<Tensor(const std::string& name, const Tensor& w, const std::vector<float>& importance)>;

struct AwqOptions {
  int grid = 20;  // α = 0, 1/grid, …, (grid − 1)/grid (α = 0 is round-to-nearest)
};

struct AwqSearch {
  double alpha = 0;
  std::vector<double> scale;      // per channel, the activation becomes x ⊙ scale (scale = 1/σ)
  double error_rtn = 0, error = 0;  // Σ over readers of tr(ΔW H ΔWᵀ)/N at α = 0 and at the choice
};

// A linear that reads the site, with optional weights of its output rows in the score (how much an
// error of each output reaches the model's output, e.g. from the Fisher; empty: all 1).
struct AwqReader {
  std::string name;
  const Tensor* w;
  std::vector<double> row_weight;
};
// Row weights of the readers by weight name (absent names: all 1).
using RowWeights = std::map<std::string, std::vector<double>>;

// The search at one site: its readers and its Hessian.
AwqSearch awq_search(const std::vector<AwqReader>& readers, const Hessian& h, const AwqQuantizer& quantize,
                     const AwqOptions& opt = {});

// AWQ on one block: at qkv_in, up_in and (gated MLPs) down_in, the search on the block's
// Hessians (by site key) and the fold of its choice; the Hessians are rescaled to the
// folded model (H' = diag(s) H diag(s)). Returns per site {alpha, error_rtn, error}; the scales
// folded go to `scales` by site key when given (sites left alone are absent).
nlohmann::json awq_block(Model& m, QuantPlan& plan, int layer, std::map<std::string, Hessian>& hessians,
                         const AwqQuantizer& quantize, const AwqOptions& opt = {}, const RowWeights& rows = {},
                         std::map<std::string, std::vector<double>>* scales = nullptr);

}  // namespace tq
