// Activation-weighted scale search for the ggml block types: the idea of
// llama.cpp's importance matrix, with the importance taken from tquant's own
// calibration (per input column, the mean x² at the linear's input, i.e. the
// diagonal of the Hessian XᵀX/N). A block's parameters minimise the weighted
// squared error Σ_i w_i (x_i − x̂_i)² over a small candidate set; for K types
// each sub-block is fitted first and its step and min are then rounded to the
// super-block's integer scales by the same criterion (methods-gptq-awq.md §5.13).
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "io/ggml_quants.h"

namespace tq {

// Fits b's parameters (d, m, sc, mn) and codes to x[g.block] with weights w[g.block]
// (null: uniform; a sub-block whose weights are all 0 is fitted unweighted). Every
// candidate is scored with its stored (f16, integer) parameters; for the legacy types the
// reference encoder's min-max parameters are among them, so the weighted error is never above its.
void fit_block(const GgmlGrid& g, const float* x, const float* w, GgmlBlock& b);
// The nearest codes of x under b's parameters (b.q is overwritten).
void code_block(const GgmlGrid& g, const float* x, GgmlBlock& b);
// Σ_i w_i (x_i − x̂_i)² of x under b (w null: uniform).
double block_error(const GgmlGrid& g, const float* x, const float* w, const GgmlBlock& b);

// A weight in a ggml type: its encoded rows, as the GGUF file holds them.
struct GgmlTensor {
  uint32_t type = 0;
  std::vector<uint8_t> data;
};
// Encodes w [rows, cols] in `type` with the scale search (block types; cols a multiple of the
// block) or as F16/F32; col_weight (cols values, or empty) weights every row's columns.
GgmlTensor encode_ggml(uint32_t type, const Tensor& w, const std::vector<float>& col_weight = {});
// The values a ggml tensor decodes to, shaped like `shape`.
Tensor decode_ggml(const GgmlTensor& t, const std::vector<int64_t>& shape);
// Bytes of a [rows, cols] tensor in `type`; −1 when cols is not a whole number of blocks.
int64_t ggml_bytes(uint32_t type, int64_t rows, int64_t cols);

}  // namespace tq
