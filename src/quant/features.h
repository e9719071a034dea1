// Per-layer features of SensiBoost and KurtBoost (docs/methods.md §3.3): the
// kurtosis of each linear's weights (data-free) and the sensitivity of each
// part of each block, the output error caused by quantizing that part's
// weights alone, measured on the fp model's inputs of the layer.
#pragma once
#include <array>
#include <functional>
#include <string>
#include <vector>

#include "nn/forward.h"

namespace tq {

// Pearson (non-excess) kurtosis with population moments: m4 / m2². NaN for a constant.
double kurtosis(const float* x, int64_t n);

// The parts of a block (nn/block.h) are quantized together, each scored by the
// output of the module that follows it:
//   attn_in  (q, k, v)    the attention output, o·attention(...)
//   attn_out (o)          o's output
//   mlp_in   (gate, up)   the MLP output, down·act(...)
//   mlp_out  (down)       down's output
// The part whose score a linear inherits ("attn_q" → attn_in, "ffn_down" → mlp_out);
// bad_input for a name that is not a block linear.
Part part_of(const std::string& linear_name);

// Quantized copy of a linear's weight: (name such as "blk.3.attn_q.weight", weight) → Ŵ.
using WeightQuantizer = std::function<Tensor(const std::string& name, const Tensor& w)>;

// s[layer][part] = mean over every output element and calibration token of
// (M_p(X; W) − M_p(X; Ŵ_p))², X the fp inputs of the layer. Parts are measured
// independently, so the order of measurement does not change any score.
std::vector<std::array<double, kNumParts>> sensitivity(const Model& m, const std::vector<Batch>& calib,
                                                       const WeightQuantizer& quantize);

}  // namespace tq
