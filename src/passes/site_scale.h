// Per-channel scales of the activation at a linear-input site, moved into
// whatever produces it and undone in the linears that read it, so the float
// function stays the same (docs/methods.md §0.3; AWQ folds its scales this way, and
// the outlier-stress variants push outliers in this way):
//   qkv_in, up_in  the norm's gain (and bias): x' = x ⊙ s, consumers' columns ÷ s
//                  (fold_channel_affine with a = 1/s; post-norm blocks put it in the quantize op)
//   down_in        the up projection's rows (and bias): in a gated MLP act(gate·x) ⊙ (up·x) is
//                  linear in up's rows, so ffn_down's columns ÷ s undo it exactly
//   o_in           v's rows (and bias): each head's P·V is linear in v's channels; a kv head
//                  shared by several query heads (GQA) gives them one scale, so s must agree
//                  across the heads of a group
// and k against q (scale_key_channels): k' = k ⊙ s, q' = q ⊘ s leave every q·k unchanged;
// RoPE rotates the channel pairs it mixes, so s is shared within each pair.
// Arithmetic in float64, cast to float once per tensor.
#pragma once
#include <nlohmann/json.hpp>
#include <vector>

#include "nn/forward.h"
#include "quant/plan.h"

namespace tq {

// Sites whose channels a scale can be moved into: qkv_in, up_in (any pre-norm block), down_in
// (gated MLPs), o_in (any block).
bool site_scalable(const Model& m, Site site);

// x' = x ⊙ s at `site` of `layer`; s has one finite, non-zero entry per channel of the site.
// Refuses (bad_input) a site it cannot scale or weights the plan already quantizes.
void scale_site_channels(Model& m, QuantPlan& plan, Site site, int layer, const std::vector<double>& s);

// k' = k ⊙ s (k's rows and bias), q' = q ⊘ s in every query head reading that kv head, at
// `layer`; s has kv_dim finite non-zero entries, equal within each RoPE pair (RoPE models).
void scale_key_channels(Model& m, QuantPlan& plan, int layer, const std::vector<double>& s);

// The RoPE pairs of one head of hd channels: (2i, 2i+1) or (i, i + hd/2), by the model's layout.
std::vector<std::pair<int, int>> rope_pairs(const Config& c);

// The linears that read a site (q, k, v; gate, up; down) and the producer a scale goes into.
std::vector<NamedLinear> site_readers(Block& b, Site site);

}  // namespace tq
