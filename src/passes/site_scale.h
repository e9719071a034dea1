// Per-channel scales of the activation at a linear-input site, moved into
// whatever produces it and undone in the linears that read it, so the float
// function stays the same (docs/methods.md §0.3; AWQ folds its scales this way, and
// the outlier-stress variants push outliers in this way):
//   qkv_in, up_in  the norm's gain (and bias): x' = x ⊙ s, consumers' columns ÷ s
//                  (fold_channel_affine with a = 1/s; post-norm blocks put it in the quantize op)
//   down_in        the up projection's rows (and bias): in a gated MLP act(gate·x) ⊙ (up·x) is
//                  linear in up's rows, so ffn_down's columns ÷ s undo it exactly
// Arithmetic in float64, cast to float once per tensor.
#pragma once
#include <nlohmann/json.hpp>
#include <vector>

#include "nn/forward.h"
#include "quant/plan.h"

namespace tq {

// Sites whose channels a scale can be moved into: qkv_in, up_in (any pre-norm block), down_in
// (gated MLPs).
bool site_scalable(const Model& m, Site site);

// x' = x ⊙ s at `site` of `layer`; s has one finite, non-zero entry per channel of the site.
// Refuses (bad_input) a site it cannot scale or weights the plan already quantizes.
void scale_site_channels(Model& m, QuantPlan& plan, Site site, int layer, const std::vector<double>& s);

// The linears that read a site (q, k, v; gate, up; down) and the producer a scale goes into.
std::vector<NamedLinear> site_readers(Block& b, Site site);

}  // namespace tq
