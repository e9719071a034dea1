// Outlier-stress variants (methods-gptq-awq.md §5.15): a model with the same
// float function as the original but with outlier channels at chosen linear
// inputs, the way real LLMs have them. Per layer and site, `channels` random
// channels get the scale `factor`, pushed into the producer (the norm's gain
// for qkv_in and up_in, the up projection's rows for down_in) and undone
// exactly in the next linears' columns (passes/site_scale.h). Weight
// quantization without activation awareness then loses those channels' small
// weights; the model in float is unchanged.
#pragma once
#include <nlohmann/json.hpp>
#include <vector>

#include "nn/forward.h"

namespace tq {

struct StressOptions {
  int channels = 4;       // outlier channels per site and layer
  double factor = 30;     // their scale
  uint64_t seed = 1;      // which channels
  std::vector<Site> sites = {Site::qkv_in, Site::up_in, Site::down_in};
};

// Applies the stress in place; returns {options, per site key the channels chosen}.
// bad_input for a post-norm model (its norm output is also the residual), a site the model
// cannot scale (down_in without a gated MLP) or more channels than the site has.
nlohmann::json stress_model(Model& m, const StressOptions& opt);

// max |a − b| / max |b| over the logits of a few fixed token sequences: how far a
// function-preserving rewrite moved the float model.
double logit_drift(const Model& a, const Model& b, uint64_t seed = 7);

}  // namespace tq
