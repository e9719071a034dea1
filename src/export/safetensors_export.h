// A quantized model to a Hugging Face directory in the compressed-tensors format
// that vLLM loads: config.json with a `quantization_config`, model.safetensors with
// the plan's integer codes and scales (folds already in the weights), tokenizer.json.
//   W8A8 (a linear whose input site is quantized): format "int-quantized", `weight` I8
//     [out, in], `weight_scale` F32 ([out, 1] per channel, [1] per tensor) and, for a
//     static per-tensor input, `input_scale` F32 [1] (asymmetric: `input_zero_point` I8 [1], the
//     zero point minus 128 as compressed-tensors' codes are signed); a per-token input is dynamic.
//   weight-only (4 or 8 bits): format "pack-quantized", `weight_packed` I32 [out, in/(32/b)]
//     (value k of a word in bits b·k .. b·k+b−1, the low ones first; each code offset by
//     2^(b−1) to be unsigned), `weight_scale` F32 [out, groups], `weight_shape` I64 [2] and,
//     when asymmetric, `weight_zero_point` I32 packed the same way along the output rows.
// What the format cannot express is refused (bad_input) naming the tensor or site.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/block.h"
#include "nn/model.h"
#include "quant/plan.h"

namespace tq {

struct SafetensorsExportOptions {
  // Leave the plan's quantizers inside attention (q, k, v, probs) out: vLLM computes attention
  // in its own precision. Off: such a quantizer is refused.
  bool float_attention = false;
};

struct SafetensorsExportResult {
  nlohmann::json quantization_config;
  int64_t quantized = 0, float_tensors = 0;  // linears written as codes; tensors written as F32
  std::vector<std::string> dropped_sites;    // float_attention: the sites left out
};

// m holds the weights as the plan's simulation has them (a loaded tquant directory, or
// simulate_weights); written one tensor at a time, so a lazily loaded model is not expanded.
SafetensorsExportResult export_safetensors(const Model& m, const QuantPlan& plan, const std::string& dir,
                                           const SafetensorsExportOptions& opt = {});

// The row of our q or k weight that HF's row r holds: HF rotates (i, i + d/2) of a head where
// GGUF and llama.c rotate (2i, 2i + 1). The identity for a model in HF's layout.
int64_t hf_source_row(const Config& c, Slot slot, int64_t r);

}  // namespace tq
