// Block-sequential runs of a recipe (docs/design.md, "the path data takes"), as GPTQ
// and llm-compressor do it: the calibration data enters block 0; each block's
// weights are converted to f32, its passes run on its own inputs, it is written
// out and dropped, and its float outputs (with the transforms its folds put into
// quantize ops) feed the next block; then the head. A model larger than memory
// is quantized with one block in f32 at a time.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "passes/pass.h"

namespace tq {

// Why r cannot run one block at a time ("" when it can): the first step whose pass
// needs the whole model, or a model whose folds reach across blocks (post-norm).
std::string whole_model_reason(const Recipe& r, const Model& m);

// The residual stream each calibration batch brings to block 0 (none without calibration data).
std::vector<Tensor> embed_calibration(const Model& m, const CalibData& calib);

// Called when block `layer` is planned, its f32 values still loaded; `inputs` are then
// the streams at the next block's input (a checkpoint saves them). The pipeline drops
// the block's values after it returns.
using BlockDone = std::function<void(int layer, const std::vector<Tensor>& inputs)>;

// Runs r on blocks first..n_layers-1, starting from the streams `inputs` at block
// `first` (a resumed run starts later), then on the head (its weights loaded), then
// records the steps in plan.passes. ctx.model stays lazily loaded but for the head.
void run_recipe_by_block(const Recipe& r, PassContext& ctx, int first, std::vector<Tensor> inputs,
                         const BlockDone& block_done);

// The tensors of block l (its norms and linears, weights and biases) with their names.
std::vector<NamedTensor> block_tensors(Model& m, int layer);

}  // namespace tq
